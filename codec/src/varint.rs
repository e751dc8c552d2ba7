//! LEB128 variable-length integers, with bounds checks on every read.

/// Why a varint could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarintError {
    #[error("data ends inside a variable-length integer")]
    Truncated,
    #[error("variable-length integer longer than 64 bits")]
    Overflow,
}

/// Bytes `value` takes as unsigned LEB128.
pub fn len_u64(value: u64) -> u64 {
    u64::from((64 - value.leading_zeros()).max(1).div_ceil(7))
}

/// Bytes `value` takes zigzag-mapped ([`write_i64`]).
pub fn len_i64(value: i64) -> u64 {
    len_u64(zigzag(value))
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Appends `value` as unsigned LEB128.
pub fn write_u64(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends `value` zigzag-mapped, so small negative numbers stay short.
pub fn write_i64(out: &mut Vec<u8>, value: i64) {
    write_u64(out, zigzag(value));
}

/// Reads an unsigned LEB128 from the front of `input`, advancing it.
pub fn read_u64(input: &mut &[u8]) -> Result<u64, VarintError> {
    let mut value = 0u64;
    for (i, &byte) in input.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        if i == 9 && bits > 1 {
            return Err(VarintError::Overflow);
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            *input = &input[i + 1..];
            return Ok(value);
        }
    }
    if input.len() >= 10 {
        Err(VarintError::Overflow)
    } else {
        Err(VarintError::Truncated)
    }
}

/// Reads a zigzag-mapped signed LEB128.
pub fn read_i64(input: &mut &[u8]) -> Result<i64, VarintError> {
    let raw = read_u64(input)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_extremes() {
        for v in [0i64, 1, -1, 63, -64, 64, 1 << 40, i64::MAX, i64::MIN] {
            let mut buf = Vec::new();
            write_i64(&mut buf, v);
            assert_eq!(len_i64(v), buf.len() as u64);
            let mut slice = buf.as_slice();
            assert_eq!(read_i64(&mut slice).unwrap(), v);
            assert!(slice.is_empty());
        }
    }

    #[test]
    fn rejects_truncated_and_overlong() {
        let mut short: &[u8] = &[0x80, 0x80];
        assert_eq!(read_u64(&mut short), Err(VarintError::Truncated));
        let mut long: &[u8] = &[0xff; 11];
        assert_eq!(read_u64(&mut long), Err(VarintError::Overflow));
    }
}
