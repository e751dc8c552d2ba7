//! Predicted-frame coding of the learned latent: the integer change `δ = ŷ − ŷ_ref` of the
//! rounded latent from the previous frame's, under tables chosen by context.
//!
//! Payload: one byte per latent channel, then (unless every channel is [`SKIP`]) one signed
//! byte per [context class](context_class), then one ANS stream. A channel's byte is its base
//! bank index, or [`SKIP`] when the channel did not change at all (nothing is coded for it).
//! Each element of a coded channel, in raster order, is coded under bank index
//! `clamp(base + offset[class], 0, 63)`, where the class comes from integers the decoder
//! already has: the reference latent at the same place and the changes just decoded to its
//! left and above. Where the scene is still, those are zero and the table is narrow; where
//! it moves, wide. Everything that selects a table is an integer in the stream or derived
//! from decoded integers, so parsing cannot depend on floating point.

use crate::coders::CoderError;
use crate::entropy::{CategoricalTable, ScaleBank, SymbolDecoder, SCALES};

/// Base-index byte of a channel that is unchanged.
pub const SKIP: u8 = 255;

/// Number of context classes: 4 magnitudes of the reference × 4 of the causal neighbours.
pub const CLASSES: usize = 16;

/// Range the encoder searches for each class's offset.
const OFFSET_RANGE: std::ops::RangeInclusive<i32> = -16..=16;

/// Rounds of alternately choosing base indices and class offsets.
const ROUNDS: usize = 3;

/// 0, 1, 2–3, 4 and above.
fn magnitude_bucket(v: u32) -> usize {
    match v {
        0 => 0,
        1 => 1,
        2..=3 => 2,
        _ => 3,
    }
}

/// The class of the element at (`row`, `col`) of a channel whose reference plane is
/// `reference` and whose changes so far (raster order) are in `delta`.
pub fn context_class(
    reference: &[i32],
    delta: &[i32],
    width: usize,
    row: usize,
    col: usize,
) -> usize {
    let i = row * width + col;
    let left = if col > 0 {
        delta[i - 1].unsigned_abs()
    } else {
        0
    };
    let up = if row > 0 {
        delta[i - width].unsigned_abs()
    } else {
        0
    };
    4 * magnitude_bucket(reference[i].unsigned_abs()) + magnitude_bucket(left.saturating_add(up))
}

/// The bank index of one class of a channel.
fn class_index(base: u8, offset: i8) -> u8 {
    (i32::from(base) + i32::from(offset)).clamp(0, SCALES as i32 - 1) as u8
}

/// Bits of every (channel, class) group under every bank index, from value histograms: the
/// encoder's search then only adds up table entries.
struct GroupCosts {
    /// `[channel][class][index]`.
    bits: Vec<[[f64; SCALES]; CLASSES]>,
    /// Whether the channel changed at all.
    changed: Vec<bool>,
}

impl GroupCosts {
    fn new(delta: &[i32], reference: &[i32], channels: usize, width: usize) -> Self {
        let bank = ScaleBank::get();
        let plane = delta.len() / channels.max(1);
        let mut bits = Vec::with_capacity(channels);
        let mut changed = Vec::with_capacity(channels);
        for c in 0..channels {
            let (d, r) = (
                &delta[c * plane..][..plane],
                &reference[c * plane..][..plane],
            );
            let mut groups: [Vec<i32>; CLASSES] = Default::default();
            for i in 0..plane {
                groups[context_class(r, d, width, i / width, i % width)].push(d[i]);
            }
            let mut channel = [[0.0; SCALES]; CLASSES];
            for (costs, group) in channel.iter_mut().zip(&mut groups) {
                group.sort_unstable();
                for run in group.chunk_by(|a, b| a == b) {
                    let count = run.len() as f64;
                    for (index, cost) in costs.iter_mut().enumerate() {
                        *cost += count * bank.bits(index as u8, run[0]);
                    }
                }
            }
            bits.push(channel);
            changed.push(d.iter().any(|&v| v != 0));
        }
        Self { bits, changed }
    }

    fn channel_bits(&self, c: usize, base: u8, offsets: &[i8; CLASSES]) -> f64 {
        (0..CLASSES)
            .map(|k| self.bits[c][k][usize::from(class_index(base, offsets[k]))])
            .sum()
    }

    /// Base indices and class offsets that code the changes in few bits: alternately the best
    /// base per channel given the offsets, and the best offset per class given the bases.
    fn choose(&self) -> (Vec<u8>, [i8; CLASSES]) {
        let mut offsets = [0i8; CLASSES];
        let mut bases = vec![SKIP; self.bits.len()];
        for round in 0..ROUNDS {
            for (c, base) in bases.iter_mut().enumerate() {
                if self.changed[c] {
                    *base = (0..SCALES as u8)
                        .min_by(|&a, &b| {
                            let (ca, cb) = (
                                self.channel_bits(c, a, &offsets),
                                self.channel_bits(c, b, &offsets),
                            );
                            ca.total_cmp(&cb)
                        })
                        .unwrap_or(0);
                }
            }
            if round + 1 == ROUNDS {
                break;
            }
            for (k, offset) in offsets.iter_mut().enumerate() {
                let cost = |o: i32| -> f64 {
                    bases
                        .iter()
                        .enumerate()
                        .filter(|&(_, &b)| b != SKIP)
                        .map(|(c, &b)| self.bits[c][k][usize::from(class_index(b, o as i8))])
                        .sum()
                };
                *offset = OFFSET_RANGE
                    .min_by(|&a, &b| cost(a).total_cmp(&cost(b)))
                    .unwrap_or(0) as i8;
            }
        }
        (bases, offsets)
    }
}

/// The payload's index bytes and the (table, symbol) items of its ANS stream, in decoding
/// order, for the change from `reference` to `latent` (both `channels` planes of `width`).
pub fn encode_items<'b>(
    latent: &[i32],
    reference: &[i32],
    channels: usize,
    width: usize,
    bank: &'b ScaleBank,
) -> (Vec<u8>, Vec<(&'b CategoricalTable, i32)>) {
    let delta: Vec<i32> = latent
        .iter()
        .zip(reference)
        .map(|(a, b)| a.wrapping_sub(*b))
        .collect();
    let (bases, offsets) = GroupCosts::new(&delta, reference, channels, width).choose();
    let mut head = bases.clone();
    if bases.iter().any(|&b| b != SKIP) {
        head.extend(offsets.iter().map(|&o| o as u8));
    }
    let plane = delta.len() / channels.max(1);
    let mut items = Vec::with_capacity(delta.len());
    for (c, &base) in bases.iter().enumerate() {
        if base == SKIP {
            continue;
        }
        let (d, r) = (
            &delta[c * plane..][..plane],
            &reference[c * plane..][..plane],
        );
        for (i, &v) in d.iter().enumerate() {
            let class = context_class(r, d, width, i / width, i % width);
            bank.push_symbols(class_index(base, offsets[class]), v, &mut items);
        }
    }
    (head, items)
}

/// Parses a predicted payload against `reference` (`channels` planes of `width`): the latent
/// the encoder had.
pub fn parse(
    payload: &[u8],
    reference: &[i32],
    channels: usize,
    width: usize,
) -> Result<Vec<i32>, CoderError> {
    if payload.len() < channels {
        return Err(CoderError::Payload(format!(
            "{} bytes cannot hold {channels} channel indices",
            payload.len()
        )));
    }
    let (bases, rest) = payload.split_at(channels);
    if let Some(&bad) = bases
        .iter()
        .find(|&&b| usize::from(b) >= SCALES && b != SKIP)
    {
        return Err(CoderError::Payload(format!(
            "table index {bad} is not below {SCALES}"
        )));
    }
    let mut offsets = [0i8; CLASSES];
    let words = if bases.iter().any(|&b| b != SKIP) {
        if rest.len() < CLASSES {
            return Err(CoderError::Payload(
                "predicted frame ends in its class offsets".into(),
            ));
        }
        let (head, words) = rest.split_at(CLASSES);
        for (o, &byte) in offsets.iter_mut().zip(head) {
            *o = byte as i8;
        }
        words
    } else {
        rest
    };
    let bank = ScaleBank::get();
    let mut decoder = SymbolDecoder::new(words)?;
    let plane = reference.len() / channels.max(1);
    let mut latent = reference.to_vec();
    let mut delta = vec![0i32; plane];
    for (c, &base) in bases.iter().enumerate() {
        if base == SKIP {
            continue;
        }
        let indices = offsets.map(|o| class_index(base, o));
        let r = &reference[c * plane..][..plane];
        for row in 0..plane / width.max(1) {
            for col in 0..width {
                let class = context_class(r, &delta, width, row, col);
                delta[row * width + col] = bank.decode(indices[class], &mut decoder)?;
            }
        }
        for (v, d) in latent[c * plane..][..plane].iter_mut().zip(&delta) {
            *v = v.wrapping_add(*d);
        }
    }
    decoder.finish()?;
    Ok(latent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::{encode, information_content, write_words};

    /// Deterministic pseudo-random values.
    fn noise(seed: u64, n: usize, spread: u64) -> Vec<i32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) % (2 * spread + 1)) as i32 - spread as i32
            })
            .collect()
    }

    fn round_trip(latent: &[i32], reference: &[i32], channels: usize, width: usize) -> usize {
        let (mut payload, items) =
            encode_items(latent, reference, channels, width, ScaleBank::get());
        write_words(&mut payload, &encode(items.into_iter()).unwrap());
        assert_eq!(parse(&payload, reference, channels, width).unwrap(), latent);
        payload.len()
    }

    #[test]
    fn changes_of_every_kind_parse_back_exactly() {
        let (channels, height, width) = (6, 5, 7);
        let n = channels * height * width;
        let reference = noise(1, n, 5);
        let mut latent = reference.clone();
        // Channel 0 unchanged, 1 small changes, 2 large ones (escapes), 3 a single change.
        let plane = height * width;
        for (v, d) in latent[plane..2 * plane].iter_mut().zip(noise(2, plane, 1)) {
            *v += d;
        }
        for (v, d) in latent[2 * plane..3 * plane]
            .iter_mut()
            .zip(noise(3, plane, 5000))
        {
            *v += d;
        }
        latent[3 * plane + 9] += 1;
        round_trip(&latent, &reference, channels, width);
        // Nothing changed: only the channel bytes.
        assert_eq!(
            round_trip(&reference, &reference, channels, width),
            channels
        );
    }

    #[test]
    fn context_narrows_the_tables_where_nothing_moves() {
        // Half of each plane moves (its reference is large), half is still: one table per
        // channel would code the still half's zeros at the moving half's width.
        let (channels, height, width) = (8, 16, 16);
        let plane = height * width;
        let mut reference = vec![0; channels * plane];
        let mut latent = vec![0; channels * plane];
        let changes = noise(4, channels * plane, 3);
        for i in 0..channels * plane {
            if (i % plane) / width < height / 2 {
                reference[i] = 6;
                latent[i] = 6 + changes[i];
            }
        }
        let bank = ScaleBank::get();
        let (_, items) = encode_items(&latent, &reference, channels, width, bank);
        let with_context = information_content(items.iter().copied());
        let one_table: f64 = (0..channels)
            .map(|c| {
                let d = &latent[c * plane..][..plane];
                (0..SCALES as u8)
                    .map(|t| d.iter().map(|&v| bank.bits(t, v)).sum::<f64>())
                    .fold(f64::INFINITY, f64::min)
            })
            .sum();
        assert!(
            with_context < 0.8 * one_table,
            "{with_context:.0} bits with context, {one_table:.0} with one table per channel"
        );
    }

    #[test]
    fn bad_payloads_are_errors() {
        let (channels, width) = (3, 4);
        let reference = noise(5, channels * 8, 3);
        let latent = noise(6, channels * 8, 3);
        let (mut payload, items) =
            encode_items(&latent, &reference, channels, width, ScaleBank::get());
        write_words(&mut payload, &encode(items.into_iter()).unwrap());
        assert!(parse(&payload[..2], &reference, channels, width).is_err());
        assert!(parse(&payload[..channels + 3], &reference, channels, width).is_err());
        let mut bad = payload.clone();
        bad[0] = 100;
        assert!(parse(&bad, &reference, channels, width).is_err());
        for cut in channels + CLASSES..payload.len() {
            let _ = parse(&payload[..cut], &reference, channels, width);
        }
    }
}
