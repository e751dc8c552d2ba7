//! Table bytes: the byte each table group of a detail layer or motion field gets for the
//! values coded in it, and those a motion-compensated frame takes from the one before it
//! (version 12 on).
//!
//! A moved frame's field and layer each give every table group they code a byte: a scale-bank
//! index or a flag's chance. From one moved frame to the next the statistics barely change,
//! yet those bytes and the list of groups they belong to were a tenth of a predicted frame at
//! the low levels. So a moved frame writes bytes only for the groups whose table is new or
//! pays to change; every other group keeps the table it had in the last moved frame of its
//! group of pictures. Any frame that is not moved (intra frames among them) starts afresh,
//! so seeking, which starts at an intra frame, needs nothing from before.

use crate::entropy::{CategoricalTable, EntropyError, ScaleBank};

/// Bits a group's own table must save over the one it would keep before the encoder writes
/// it. Its byte and its entry in the list of groups given cost about 16, but a table chosen
/// by 8 keeps the next frames' tables nearer theirs: 30 frames of `bikes` at levels 2, 4 and
/// 7, at 16: 8,797, 15,935 and 41,766 bytes; at 8: 8,757, 15,842, 41,706 (0: 9,551, 17,496,
/// 45,801; 40: 8,834, 16,202, 42,153); `cityCC0` at 8 0.1–0.3 % smaller than at 16.
const KEEP_MARGIN_BITS: f64 = 8.0;

/// A frame's table bytes by group (`None`: no table).
pub(super) type TableBytes = Vec<Option<u8>>;

/// The tables of the last moved frame: the field's and the layer's, by group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct MovedTables {
    pub(super) field: TableBytes,
    pub(super) layer: TableBytes,
}

/// The bytes to write, by group, of a frame whose groups would each have table `own` and may
/// keep `kept` (the last moved frame's): a group's own byte where it has no table to keep or
/// where its own saves more than [`KEEP_MARGIN_BITS`] (`bits(g, byte)` costs group g's
/// values under a byte).
pub(super) fn given(
    own: &[Option<u8>],
    kept: &[Option<u8>],
    bits: impl Fn(usize, u8) -> f64,
) -> TableBytes {
    own.iter()
        .enumerate()
        .map(|(g, &mine)| {
            let mine = mine?;
            match kept.get(g).copied().flatten() {
                Some(old) if old == mine => None,
                Some(old) if bits(g, old) <= bits(g, mine) + KEEP_MARGIN_BITS => None,
                _ => Some(mine),
            }
        })
        .collect()
}

/// The values of `symbols` (each with its group) by group, of `groups` groups.
pub(super) fn members<G: Copy>(groups: usize, symbols: &[(G, i32)]) -> Vec<Vec<i32>>
where
    usize: From<G>,
{
    let mut members = vec![Vec::new(); groups];
    for &(g, v) in symbols {
        members[usize::from(g)].push(v);
    }
    members
}

/// A group's own table byte for the `values` coded in it (`None` for none): a flag group's
/// chance of a set flag in 256ths (1..=255), another group's cheapest scale-bank index.
pub(super) fn own_byte(flag: bool, values: &[i32]) -> Option<u8> {
    if values.is_empty() {
        None
    } else if flag {
        let set = values.iter().filter(|&&v| v != 0).count();
        Some((256 * set / values.len()).clamp(1, 255) as u8)
    } else {
        Some(ScaleBank::get().cheapest_of_all(values))
    }
}

/// Bits of a group's `values` under table byte `byte` (for encoders weighing tables): a flag
/// group's values (0 or 1) under its binary table, another group's under the bank's table.
pub(super) fn bits(flag: bool, byte: u8, values: &[i32]) -> f64 {
    if flag {
        let set = values.iter().filter(|&&v| v != 0).count() as f64;
        let p = f64::from(byte.max(1)) / 256.0;
        -(set * p.log2() + (values.len() as f64 - set) * (1.0 - p).log2())
    } else {
        let bank = ScaleBank::get();
        values.iter().map(|&v| bank.bits(byte, v)).sum()
    }
}

/// The binary table of a flag group whose byte is `k`: `[256 − k, k]` over 0 and 1 (a byte
/// of 0 counts as 1).
pub(super) fn flag_table(k: u8) -> Result<CategoricalTable, EntropyError> {
    let k = u64::from(k.max(1));
    CategoricalTable::from_counts(0, &[256 - k, k])
}

/// The tables in force after a frame gave `given` over `kept`.
pub(super) fn merged(kept: &[Option<u8>], given: &[Option<u8>]) -> TableBytes {
    (0..kept.len().max(given.len()))
        .map(|g| {
            given
                .get(g)
                .copied()
                .flatten()
                .or(kept.get(g).copied().flatten())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_keeps_its_table_unless_its_own_saves_more_than_it_costs_to_write() {
        let own = [Some(10), Some(20), None, Some(5), Some(7)];
        let kept = [Some(10), Some(21), Some(3), None, Some(30)];
        // Group 1's old table costs 4 bits more, group 4's 40 more.
        let bits = |g: usize, byte: u8| match (g, byte) {
            (1, 21) => 104.0,
            (4, 30) => 140.0,
            _ => 100.0,
        };
        let given = given(&own, &kept, bits);
        assert_eq!(given, [None, None, None, Some(5), Some(7)]);
        assert_eq!(
            merged(&kept, &given),
            [Some(10), Some(21), Some(3), Some(5), Some(7)]
        );
        // With nothing to keep, every group gives its own.
        assert_eq!(given_all(&own), own);
    }

    fn given_all(own: &[Option<u8>]) -> Vec<Option<u8>> {
        given(own, &[], |_, _| 0.0)
    }
}
