//! The intra latent's channel context: per latent channel, how its elements are coded beyond
//! what the hyperprior says.
//!
//! The hyperprior gives each element a spread but no mean, so a channel that varies smoothly
//! across the picture (the block's average colour, its slow gradients) pays for every value
//! again in every block; and far from the rate the model was trained at (a coarse latent
//! step), its spreads are off by a factor that differs per channel. So the encoder may, per
//! channel, code each element as its difference from a prediction out of its decoded
//! neighbours (left `a`, above `b`, above-left `c`: LOCO-I's median edge detector), and move
//! the hyperprior's table choice by a whole number of bank tables. Both are integers the
//! decoder reads before the latent, so parsing stays exact on every machine.
//!
//! Written after the side latent's table indices: the number of channels coded otherwise
//! than plainly (varint), then for each its distance from the previous one listed (varint,
//! the first counted from channel 0) and one byte: bit 7 set for a predicted channel, bits
//! 0–6 the table shift plus 64.

use super::activity::{ActivityContext, ActivityTracker};
use super::LatentShape;
use crate::coders::CoderError;
use crate::entropy::{ScaleBank, SCALES};
use crate::varint;

/// How one channel is coded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelCoding {
    /// Each element is coded as its difference from [`predict`].
    pub predicted: bool,
    /// Added to the hyperprior's table index (clamped to the bank).
    pub shift: i8,
}

/// Table shifts a channel may take: a written byte holds −64 to 63.
const SHIFTS: std::ops::RangeInclusive<i8> = -64..=63;

/// The table shifts the encoder tries: narrower tables mostly (the hyperprior's spreads are
/// too wide at coarse steps and for predicted values).
const TRIED_SHIFTS: std::ops::RangeInclusive<i8> = -32..=6;

/// Bits a channel listed costs to write, about (its distance and its byte).
const LISTED_BITS: f64 = 12.0;

/// Magnitudes the encoder's cost tables count one by one; larger ones are costed exactly.
const COUNTED: usize = 24;

/// Every channel's coding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelContext {
    channels: Vec<ChannelCoding>,
}

/// The prediction of element `(i, j)` of a `width`-wide plane from its decoded neighbours:
/// the median edge detector, the left neighbour on the first row, the one above in the first
/// column, 0 for the first element.
pub fn predict(plane: &[i32], width: usize, i: usize, j: usize) -> i64 {
    let at = |i: usize, j: usize| i64::from(plane[i * width + j]);
    match (i, j) {
        (0, 0) => 0,
        (0, _) => at(0, j - 1),
        (_, 0) => at(i - 1, 0),
        _ => {
            let (a, b, c) = (at(i, j - 1), at(i - 1, j), at(i - 1, j - 1));
            if c >= a.max(b) {
                a.min(b)
            } else if c <= a.min(b) {
                a.max(b)
            } else {
                a + b - c
            }
        }
    }
}

impl ChannelContext {
    /// Every channel coded as the hyperprior says.
    pub fn plain(channels: usize) -> Self {
        Self {
            channels: vec![ChannelCoding::default(); channels],
        }
    }

    /// How channel `c` is coded.
    pub fn coding(&self, c: usize) -> ChannelCoding {
        self.channels[c]
    }

    /// The table an element whose hyperprior table is `index` is coded under in a channel
    /// coded with `coding`.
    pub fn table(coding: ChannelCoding, index: u8) -> u8 {
        shifted_table(index, coding.shift)
    }

    /// Encoder: for each channel of the latent `y` (whose hyperprior tables are `indices`),
    /// the coding that costs fewest bits.
    pub fn choose(y: &[i32], indices: &[u8], shape: LatentShape) -> Self {
        let bits = bit_costs();
        let plane = shape.plane();
        let channels = (0..shape.channels)
            .map(|c| {
                let range = c * plane..(c + 1) * plane;
                let values = &y[range.clone()];
                let tables = &indices[range];
                let residuals = Self::residuals(values, shape.width);
                let mut best = (f64::INFINITY, ChannelCoding::default());
                for (predicted, coded) in [(false, values), (true, residuals.as_slice())] {
                    let histogram = Histogram::of(coded, tables);
                    for shift in TRIED_SHIFTS {
                        let coding = ChannelCoding { predicted, shift };
                        let listed = if coding == ChannelCoding::default() {
                            0.0
                        } else {
                            LISTED_BITS
                        };
                        let cost = listed + histogram.cost(&bits, |t| Self::table(coding, t));
                        if cost < best.0 {
                            best = (cost, coding);
                        }
                    }
                }
                best.1
            })
            .collect();
        Self { channels }
    }

    /// A plane's values less their predictions (what a predicted channel codes).
    fn residuals(values: &[i32], width: usize) -> Vec<i32> {
        let height = values.len() / width.max(1);
        let mut out = Vec::with_capacity(values.len());
        for i in 0..height {
            for j in 0..width {
                // The encoder's values are bounded (`round_element`), so is the difference.
                out.push((i64::from(values[i * width + j]) - predict(values, width, i, j)) as i32);
            }
        }
        out
    }

    /// Encoder: the (table, value) of every element of `y`, in coding order.
    pub fn symbols(&self, y: &[i32], indices: &[u8], shape: LatentShape) -> Vec<(u8, i32)> {
        let plane = shape.plane();
        let mut out = Vec::with_capacity(y.len());
        for (c, &coding) in self.channels.iter().enumerate() {
            let range = c * plane..(c + 1) * plane;
            let values = &y[range.clone()];
            let coded = match coding.predicted {
                true => Self::residuals(values, shape.width),
                false => values.to_vec(),
            };
            out.extend(
                indices[range]
                    .iter()
                    .zip(coded)
                    .map(|(&t, v)| (Self::table(coding, t), v)),
            );
        }
        out
    }

    /// Decoder: the latent, each element read by `read` under the table it is coded with,
    /// moved by `activity` where there is one.
    pub fn decode(
        &self,
        indices: &[u8],
        shape: LatentShape,
        activity: Option<&ActivityContext>,
        mut read: impl FnMut(u8) -> Result<i32, CoderError>,
    ) -> Result<Vec<i32>, CoderError> {
        let plane = shape.plane();
        let mut y = Vec::with_capacity(indices.len());
        let mut activity = activity.map(|context| (context, ActivityTracker::new(shape)));
        for (c, &coding) in self.channels.iter().enumerate() {
            let start = c * plane;
            for (k, &t) in indices[start..start + plane].iter().enumerate() {
                let table = Self::table(coding, t);
                let value = match &activity {
                    Some((context, tracker)) => read(context.table(table, tracker.class(k)))?,
                    None => read(table)?,
                };
                if let Some((_, tracker)) = &mut activity {
                    tracker.record(k, value, table);
                }
                let value = match coding.predicted {
                    false => value,
                    true => {
                        let p = predict(&y[start..], shape.width, k / shape.width, k % shape.width);
                        i32::try_from(i64::from(value) + p).map_err(|_| {
                            CoderError::Payload("a predicted latent value overflows".into())
                        })?
                    }
                };
                y.push(value);
            }
            if let Some((_, tracker)) = &mut activity {
                tracker.next_channel();
            }
        }
        Ok(y)
    }

    /// Writes the channels coded otherwise than plainly.
    pub fn write(&self, out: &mut Vec<u8>) {
        let listed: Vec<(usize, ChannelCoding)> = self
            .channels
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, c)| *c != ChannelCoding::default())
            .collect();
        varint::write_u64(out, listed.len() as u64);
        let mut next = 0;
        for (c, coding) in listed {
            varint::write_u64(out, (c - next) as u64);
            out.push((u8::from(coding.predicted) << 7) | (coding.shift + 64) as u8);
            next = c + 1;
        }
    }

    /// Reads what [`Self::write`] wrote for a latent of `channels` channels.
    pub fn read(input: &mut &[u8], channels: usize) -> Result<Self, CoderError> {
        let bad = |what: String| CoderError::Payload(format!("latent channel context: {what}"));
        let listed = varint::read_u64(input).map_err(|e| bad(e.to_string()))?;
        if listed > channels as u64 {
            return Err(bad(format!("{listed} channels listed of {channels}")));
        }
        let mut context = Self::plain(channels);
        let mut next = 0u64;
        for _ in 0..listed {
            let c = next + varint::read_u64(input).map_err(|e| bad(e.to_string()))?;
            let (&byte, rest) = input.split_first().ok_or_else(|| bad("cut short".into()))?;
            *input = rest;
            let slot = usize::try_from(c)
                .ok()
                .and_then(|c| context.channels.get_mut(c))
                .ok_or_else(|| bad(format!("channel {c} of {channels}")))?;
            let shift = i8::try_from(i16::from(byte & 0x7f) - 64).expect("in −64..=63");
            debug_assert!(SHIFTS.contains(&shift));
            *slot = ChannelCoding {
                predicted: byte & 0x80 != 0,
                shift,
            };
            next = c + 1;
        }
        Ok(context)
    }
}

/// `index` moved by `shift` tables, within the bank.
pub(super) fn shifted_table(index: u8, shift: i8) -> u8 {
    (i32::from(index) + i32::from(shift)).clamp(0, SCALES as i32 - 1) as u8
}

/// `bits[t][m]`: what magnitude `m` costs under table `t` (a sign is in the table), for the
/// magnitudes a [`Histogram`] counts one by one.
pub(super) type BitCosts = Vec<[f64; COUNTED]>;

/// The bank's [`BitCosts`].
pub(super) fn bit_costs() -> BitCosts {
    let bank = ScaleBank::get();
    (0..SCALES as u8)
        .map(|t| std::array::from_fn(|m| bank.bits(t, m as i32)))
        .collect()
}

/// How often each (table, magnitude) occurs among some elements, for costing shifts quickly.
pub(super) struct Histogram {
    /// counts[t][m] for magnitudes below [`COUNTED`].
    counts: Vec<[u32; COUNTED]>,
    /// The larger values, with their tables.
    large: Vec<(u8, i32)>,
}

impl Histogram {
    pub(super) fn of(values: &[i32], tables: &[u8]) -> Self {
        let mut counts = vec![[0u32; COUNTED]; SCALES];
        let mut large = Vec::new();
        for (&v, &t) in values.iter().zip(tables) {
            match usize::try_from(v.unsigned_abs()) {
                Ok(m) if m < COUNTED => counts[usize::from(t).min(SCALES - 1)][m] += 1,
                _ => large.push((t, v)),
            }
        }
        Self { counts, large }
    }

    /// Bits of the elements when table `t` is coded under `table(t)`.
    pub(super) fn cost(&self, bits: &BitCosts, table: impl Fn(u8) -> u8) -> f64 {
        let bank = ScaleBank::get();
        let counted: f64 = self
            .counts
            .iter()
            .enumerate()
            .map(|(t, row)| {
                let b = &bits[usize::from(table(t as u8))];
                row.iter()
                    .zip(b)
                    .filter(|(&n, _)| n > 0)
                    .map(|(&n, &b)| f64::from(n) * b)
                    .sum::<f64>()
            })
            .sum();
        counted
            + self
                .large
                .iter()
                .map(|&(t, v)| bank.bits(table(t), v))
                .sum::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_reads_back_what_it_wrote_and_refuses_forged_channels() {
        let mut context = ChannelContext::plain(40);
        context.channels[0] = ChannelCoding {
            predicted: true,
            shift: -12,
        };
        context.channels[39] = ChannelCoding {
            predicted: false,
            shift: 63,
        };
        context.channels[7] = ChannelCoding {
            predicted: true,
            shift: -64,
        };
        let mut out = Vec::new();
        context.write(&mut out);
        assert_eq!(
            ChannelContext::read(&mut out.as_slice(), 40).unwrap(),
            context
        );
        assert!(ChannelContext::read(&mut out.as_slice(), 39).is_err());
        assert!(ChannelContext::read(&mut &out[..out.len() - 1], 40).is_err());
        assert!(ChannelContext::read(&mut [200u8, 1].as_slice(), 40).is_err());
    }

    /// A smooth channel is predicted, and decoding the symbols the encoder wrote gives back
    /// exactly its latent.
    #[test]
    fn a_smooth_channel_is_predicted_and_decodes_exactly() {
        let shape = LatentShape {
            channels: 2,
            height: 6,
            width: 9,
        };
        // Channel 0: a large ramp (costly plainly under wide tables, near free predicted);
        // channel 1: sparse noise.
        let mut y: Vec<i32> = (0..54).map(|k: i32| 40 + (k % 9) * 3 + k / 9).collect();
        y.extend((0..54).map(|k| [0, 0, 1, 0, -1, 0, 0][k % 7]));
        let indices = vec![30u8; y.len()];
        let context = ChannelContext::choose(&y, &indices, shape);
        assert!(context.channels[0].predicted, "{context:?}");
        let symbols = context.symbols(&y, &indices, shape);
        let mut read = symbols.iter();
        let decoded = context
            .decode(&indices, shape, None, |t| {
                let &(table, value) = read.next().unwrap();
                assert_eq!(table, t);
                Ok(value)
            })
            .unwrap();
        assert_eq!(decoded, y);
        let bank = ScaleBank::get();
        let cost = |s: &[(u8, i32)]| s.iter().map(|&(t, v)| bank.bits(t, v)).sum::<f64>();
        let plain: Vec<(u8, i32)> = indices.iter().copied().zip(y.iter().copied()).collect();
        assert!(cost(&symbols) < cost(&plain) / 2.0);
    }
}
