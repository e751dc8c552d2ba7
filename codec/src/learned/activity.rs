//! The intra latent's activity context (files of version 14 on): each element's table moved
//! by how far its decoded neighbours strayed from what their own tables expected.
//!
//! The side latent is four times coarser than the latent, so its tables cannot follow an edge
//! or a flat patch inside one of its cells; but the elements decoded before an element can. An
//! element whose neighbours in its plane (left, above, above-left, above-right) and whose
//! elements in the channels before it at its position all came out smaller than their tables
//! expected is likely small too, and the other way round. So each element's *surprise*, the
//! log-ratio of its coded magnitude to its table's scale, is kept as it is decoded; the two
//! means of the surprises around the next element pick one of [`CLASSES`] classes, and the
//! payload gives each class a table shift. Everything here is an integer from the decoded
//! values and the table indices, so parsing stays exact on every machine.
//!
//! Written after the channel context: a byte, 0 (no activity context) or 1, then for 1 the
//! [`CLASSES`] shifts, each 5 bits (the shift plus 16, in −16..=15), packed from the low bit
//! of each byte up, 12 bytes.
//!
//! The learned model alone against JPEG 4:4:4 on held-out pictures (2 frames each, latent
//! steps 0.5–16, `aecodec eval … --codecs learned,jpeg --reference jpeg`), without and with
//! it: `bikes` −36.9 / −37.4 %, `marble-data` +14.6 / +13.9 %, `sway-backgrounds` +22.4 /
//! +20.0 %, `ukui-wallpapers` +33.4 / +31.0 %. In a trial on those pictures' latents, the
//! channels before added about a quarter to what the plane's neighbours alone saved, and
//! finer classes gained little more than their bytes cost.

use super::context::{bit_costs, shifted_table, Histogram};
use super::LatentShape;
use crate::coders::CoderError;

/// Classes of spatial surprise (the mean over the plane's decoded neighbours).
const SPATIAL_CLASSES: usize = 6;
/// Classes of channel surprise (the mean over the channels before, at the same position).
const CHANNEL_CLASSES: usize = 3;
/// Classes an element may fall in.
pub const CLASSES: usize = SPATIAL_CLASSES * CHANNEL_CLASSES;
/// The width of a class, in surprise units (natural log × 256): 0.75, a factor of 2.1.
const CLASS_WIDTH: i64 = 192;
/// Bytes of a written shift table.
const TABLE_BYTES: usize = (5 * CLASSES).div_ceil(8);
/// Shifts a class may take.
const SHIFTS: std::ops::RangeInclusive<i8> = -16..=15;

/// `round(256 · ln(m + 0.5))` for magnitudes 0..=63 (larger ones count as 63): what a coded
/// magnitude says of its element's scale, in the units of [`log_scale_of_table`]. Fixed here
/// (Python: `[round(256*math.log(m+0.5)) for m in range(64)]`) so no machine recomputes it.
const LOG_MAGNITUDE: [i16; 64] = [
    -177, 104, 235, 321, 385, 436, 479, 516, 548, 576, 602, 625, 647, 666, 685, 702, 718, 733, 747,
    760, 773, 785, 797, 808, 819, 829, 839, 848, 858, 866, 875, 883, 891, 899, 906, 914, 921, 928,
    935, 941, 948, 954, 960, 966, 972, 977, 983, 988, 994, 999, 1004, 1009, 1014, 1019, 1024, 1028,
    1033, 1037, 1042, 1046, 1050, 1054, 1059, 1063,
];

/// The log-scale of bank table `t`, natural log × 256: `ln(0.15) + t · ln(1.16)` rounded as
/// `entropy::index_for_log_scale` rounds its constants.
fn log_scale_of_table(t: u8) -> i64 {
    -486 + 38 * i64::from(t)
}

/// How far a value coded under table `t` strayed from the table's scale.
fn surprise(value: i32, t: u8) -> i64 {
    let m = value.unsigned_abs().min(63) as usize;
    i64::from(LOG_MAGNITUDE[m]) - log_scale_of_table(t)
}

/// Follows the surprises of a latent's elements in coding order (channel by channel, each in
/// raster order) and says which class the next element falls in.
pub struct ActivityTracker {
    shape: LatentShape,
    /// Per position, the sum of the surprises of the channels done.
    channel_sums: Vec<i64>,
    /// Channels done.
    channels_done: i64,
    /// The current channel's surprises so far, by position.
    plane: Vec<i64>,
}

impl ActivityTracker {
    pub fn new(shape: LatentShape) -> Self {
        Self {
            shape,
            channel_sums: vec![0; shape.plane()],
            channels_done: 0,
            plane: vec![0; shape.plane()],
        }
    }

    /// The class of element `k` (raster index) of the current channel, once the elements
    /// before it are recorded.
    pub fn class(&self, k: usize) -> usize {
        let width = self.shape.width;
        let (i, j) = (k / width, k % width);
        let mut sum = 0i64;
        let mut count = 0i64;
        let mut take = |i: usize, j: usize| {
            sum += self.plane[i * width + j];
            count += 1;
        };
        if j > 0 {
            take(i, j - 1);
        }
        if i > 0 {
            take(i - 1, j);
            if j > 0 {
                take(i - 1, j - 1);
            }
            if j + 1 < width {
                take(i - 1, j + 1);
            }
        }
        let spatial = if count > 0 { sum.div_euclid(count) } else { 0 };
        let channel = match self.channels_done {
            0 => 0,
            n => self.channel_sums[k].div_euclid(n),
        };
        let bin = |mean: i64, classes: usize| {
            (mean.div_euclid(CLASS_WIDTH) + classes as i64 / 2).clamp(0, classes as i64 - 1)
                as usize
        };
        bin(spatial, SPATIAL_CLASSES) * CHANNEL_CLASSES + bin(channel, CHANNEL_CLASSES)
    }

    /// Records element `k` of the current channel: the value coded and the table its
    /// channel context gave it (before any class shift).
    pub fn record(&mut self, k: usize, value: i32, table: u8) {
        self.plane[k] = surprise(value, table);
    }

    /// Ends the current channel.
    pub fn next_channel(&mut self) {
        for (sum, &s) in self.channel_sums.iter_mut().zip(&self.plane) {
            *sum += s;
        }
        self.plane.fill(0);
        self.channels_done += 1;
    }
}

/// The table shift of each class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityContext {
    shifts: [i8; CLASSES],
}

impl ActivityContext {
    /// The table an element of class `class` whose channel context gives it table `table`
    /// is coded under.
    pub fn table(&self, table: u8, class: usize) -> u8 {
        shifted_table(table, self.shifts[class])
    }

    /// The classes of a latent's `symbols` (table, value) in coding order.
    fn classes(symbols: &[(u8, i32)], shape: LatentShape) -> Vec<usize> {
        let plane = shape.plane();
        let mut tracker = ActivityTracker::new(shape);
        let mut classes = Vec::with_capacity(symbols.len());
        for channel in symbols.chunks(plane) {
            for (k, &(table, value)) in channel.iter().enumerate() {
                classes.push(tracker.class(k));
                tracker.record(k, value, table);
            }
            tracker.next_channel();
        }
        classes
    }

    /// Encoder: moves the tables of `symbols` (the channel context's, in coding order) by the
    /// shifts that code them in fewest bits, and returns those shifts; none, and `symbols` as
    /// they were, where the shifts do not save their table's bytes.
    pub fn code(symbols: &mut [(u8, i32)], shape: LatentShape) -> Option<Self> {
        let classes = Self::classes(symbols, shape);
        let mut members: Vec<(Vec<i32>, Vec<u8>)> = vec![(Vec::new(), Vec::new()); CLASSES];
        for (&class, &(table, value)) in classes.iter().zip(symbols.iter()) {
            members[class].0.push(value);
            members[class].1.push(table);
        }
        let bits = bit_costs();
        let mut shifts = [0i8; CLASSES];
        let mut saved = 0.0;
        for (shift, (values, tables)) in shifts.iter_mut().zip(&members) {
            if values.is_empty() {
                continue;
            }
            let histogram = Histogram::of(values, tables);
            let cost = |s: i8| histogram.cost(&bits, |t| shifted_table(t, s));
            let (best, least) = SHIFTS
                .map(|s| (s, cost(s)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .expect("shifts to try");
            *shift = best;
            saved += cost(0) - least;
        }
        if saved <= 8.0 * (TABLE_BYTES + 1) as f64 {
            return None;
        }
        let context = Self { shifts };
        for (symbol, &class) in symbols.iter_mut().zip(&classes) {
            symbol.0 = context.table(symbol.0, class);
        }
        Some(context)
    }

    /// Writes the context, or its absence.
    pub fn write(context: Option<&Self>, out: &mut Vec<u8>) {
        let Some(context) = context else {
            out.push(0);
            return;
        };
        out.push(1);
        let mut packed = [0u8; TABLE_BYTES];
        for (c, &shift) in context.shifts.iter().enumerate() {
            let v = (shift - SHIFTS.start()) as u16;
            let bit = 5 * c;
            let word = (v << (bit % 8)).to_le_bytes();
            packed[bit / 8] |= word[0];
            if bit / 8 + 1 < TABLE_BYTES {
                packed[bit / 8 + 1] |= word[1];
            }
        }
        out.extend_from_slice(&packed);
    }

    /// Reads what [`Self::write`] wrote.
    pub fn read(input: &mut &[u8]) -> Result<Option<Self>, CoderError> {
        let bad = |what: &str| CoderError::Payload(format!("latent activity context: {what}"));
        let (&flag, rest) = input.split_first().ok_or_else(|| bad("cut short"))?;
        *input = rest;
        match flag {
            0 => return Ok(None),
            1 => {}
            _ => return Err(bad(&format!("flag {flag}"))),
        }
        if input.len() < TABLE_BYTES {
            return Err(bad("cut short"));
        }
        let (packed, rest) = input.split_at(TABLE_BYTES);
        *input = rest;
        let shifts = std::array::from_fn(|c| {
            let bit = 5 * c;
            let low = u16::from(packed[bit / 8]);
            let high = u16::from(packed.get(bit / 8 + 1).copied().unwrap_or(0));
            let v = (((high << 8) | low) >> (bit % 8)) & 0x1f;
            v as i8 + SHIFTS.start()
        });
        Ok(Some(Self { shifts }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_reads_back_and_cut_or_forged_ones_are_errors() {
        let context = ActivityContext {
            shifts: std::array::from_fn(|c| (c as i8 * 7) % 32 - 16),
        };
        let mut out = Vec::new();
        ActivityContext::write(Some(&context), &mut out);
        ActivityContext::write(None, &mut out);
        assert_eq!(out.len(), 1 + TABLE_BYTES + 1);
        let mut input = &out[..];
        assert_eq!(ActivityContext::read(&mut input).unwrap(), Some(context));
        assert_eq!(ActivityContext::read(&mut input).unwrap(), None);
        assert!(input.is_empty());
        for cut in 0..=TABLE_BYTES {
            assert!(ActivityContext::read(&mut &out[..cut]).is_err(), "{cut}");
        }
        assert!(ActivityContext::read(&mut [2u8].as_slice()).is_err());
    }

    /// A latent whose first rows are all zero and whose last rows are large, under one table
    /// that fits neither: the context narrows the tables of the first and widens those of the
    /// last, and saves more bits than its table costs.
    #[test]
    fn elements_whose_neighbours_strayed_one_way_get_tables_moved_that_way() {
        let shape = LatentShape {
            channels: 4,
            height: 8,
            width: 10,
        };
        let symbols: Vec<(u8, i32)> = (0..shape.elements())
            .map(|i| {
                let row = (i % shape.plane()) / shape.width;
                let value = if row < 4 { 0 } else { [9, -12, 15, -8][i % 4] };
                (20u8, value)
            })
            .collect();
        let mut moved = symbols.clone();
        ActivityContext::code(&mut moved, shape).expect("it pays");
        let bank = crate::entropy::ScaleBank::get();
        let bits = |s: &[(u8, i32)]| s.iter().map(|&(t, v)| bank.bits(t, v)).sum::<f64>();
        assert!(bits(&moved) + 8.0 * 13.0 < bits(&symbols));
        let last = shape.plane() - 1;
        assert!(
            moved[shape.width + 1].0 < 20 && moved[last].0 > 20,
            "{moved:?}"
        );
        // Nothing to gain: none.
        let mut zeros = vec![(0u8, 0i32); shape.elements()];
        assert_eq!(ActivityContext::code(&mut zeros, shape), None);
        assert!(zeros.iter().all(|&symbol| symbol == (0, 0)));
    }
}
