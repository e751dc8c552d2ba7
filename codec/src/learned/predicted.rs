//! Predicted-frame coding of the learned latent: the integer change `δ = ŷ − p` of the
//! rounded latent from its prediction `p`, under tables chosen by context. The prediction is
//! the previous frame's latent, either as it is or moved block by block by a motion field
//! ([`super::motion`]), whichever the encoder found cheaper.
//!
//! Each element of a coded channel, in raster order, is coded under bank index
//! `clamp(base + offset[class], 0, 63)`: `base` is the channel's, `offset` one per
//! [context class](context_class), and the class comes from integers the decoder already has
//! (the prediction at the same place and the changes just decoded to its left and above).
//! Where the scene is still those are zero and the table is narrow; where it moves, wide. A
//! channel that did not change at all is [`UNCHANGED`] and nothing is coded for it.
//!
//! Payload: one byte, the bank index of the table choice's symbols, with [`MOTION_FLAG`] set
//! when a motion field is sent, in which case one byte follows, the bank index of the field's
//! symbols; then one ANS stream with the motion field (if sent), the [`TableChoice`] (each
//! base as its change from the previous predicted frame's, or from the previous channel's in
//! the first predicted frame after an intra frame; then, unless every channel is unchanged,
//! each offset as its change from the previous frame's), then the latent's changes.
//! Everything that selects a table is an integer in the stream or derived from decoded
//! integers, so parsing cannot depend on floating point.

use super::motion::MotionField;
use super::{round_element, LatentShape};
use crate::coders::CoderError;
use crate::entropy::{CategoricalTable, ScaleBank, StreamEnd, SymbolDecoder, SCALES};

/// The base of a channel that is unchanged.
pub const UNCHANGED: u8 = SCALES as u8;

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

/// The candidate whose cost is least (the first of equals), each cost computed once.
fn cheapest<T: Copy>(
    candidates: impl IntoIterator<Item = T>,
    cost: impl Fn(T) -> f64,
) -> Option<T> {
    candidates
        .into_iter()
        .map(|c| (c, cost(c)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

/// Bits of every (channel, class) group under every bank index, from value histograms: the
/// encoder's search then only adds up table entries.
struct GroupCosts {
    /// `[channel][class][index]`.
    bits: Vec<[[f64; SCALES]; CLASSES]>,
    /// Whether the channel changed at all.
    changed: Vec<bool>,
    /// The context class of every element (all planes, raster order), as the decoder will
    /// derive it.
    classes: Vec<u8>,
}

impl GroupCosts {
    fn new(delta: &[i32], reference: &[i32], channels: usize, width: usize) -> Self {
        let bank = ScaleBank::get();
        let plane = delta.len() / channels.max(1);
        let mut bits = Vec::with_capacity(channels);
        let mut changed = Vec::with_capacity(channels);
        let mut classes = Vec::with_capacity(delta.len());
        for c in 0..channels {
            let (d, r) = (
                &delta[c * plane..][..plane],
                &reference[c * plane..][..plane],
            );
            let mut groups: [Vec<i32>; CLASSES] = Default::default();
            for (i, &v) in d.iter().enumerate() {
                let class = context_class(r, d, width, i / width, i % width);
                groups[class].push(v);
                classes.push(class as u8);
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
        Self {
            bits,
            changed,
            classes,
        }
    }

    fn channel_bits(&self, c: usize, base: u8, offsets: &[i8; CLASSES]) -> f64 {
        (0..CLASSES)
            .map(|k| self.bits[c][k][usize::from(class_index(base, offsets[k]))])
            .sum()
    }

    /// Base indices and class offsets that code the changes in few bits: alternately the best
    /// base per channel given the offsets, and the best offset per class given the bases,
    /// starting from (and, where costs tie, keeping) the previous frame's offsets, which are
    /// the cheapest to code.
    fn choose(&self, previous: Option<&TableChoice>) -> TableChoice {
        let mut offsets = previous.map_or([0; CLASSES], |p| p.offsets);
        let mut bases = vec![UNCHANGED; self.bits.len()];
        for round in 0..ROUNDS {
            for (c, base) in bases.iter_mut().enumerate() {
                if self.changed[c] {
                    *base = cheapest(0..SCALES as u8, |b| self.channel_bits(c, b, &offsets))
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
                        .filter(|&(_, &b)| b != UNCHANGED)
                        .map(|(c, &b)| self.bits[c][k][usize::from(class_index(b, o as i8))])
                        .sum()
                };
                let mut candidates: Vec<i32> = OFFSET_RANGE.collect();
                candidates.sort_by_key(|&o| (o - i32::from(*offset)).abs());
                *offset = cheapest(candidates, cost).unwrap_or(0) as i8;
            }
        }
        TableChoice { bases, offsets }
    }
}

/// The tables one predicted frame was coded with; the next predicted frame codes its own as
/// the change from these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableChoice {
    /// Per channel: the base bank index (0..=63), or [`UNCHANGED`].
    bases: Vec<u8>,
    offsets: [i8; CLASSES],
}

impl TableChoice {
    /// The channels that are coded, each with the bank index of every context class.
    fn coded_channels(&self) -> impl Iterator<Item = (usize, [u8; CLASSES])> + '_ {
        self.bases
            .iter()
            .enumerate()
            .filter(|&(_, &base)| base != UNCHANGED)
            .map(|(c, &base)| (c, self.offsets.map(|o| class_index(base, o))))
    }

    fn codes_anything(&self) -> bool {
        self.bases.iter().any(|&b| b != UNCHANGED)
    }

    /// What channel `c`'s base is coded against.
    fn predicted_base(&self, previous: Option<&TableChoice>, c: usize) -> u8 {
        match previous {
            Some(p) => p.bases[c],
            None if c == 0 => UNCHANGED,
            None => self.bases[c - 1],
        }
    }

    /// The symbols that code this choice, in decoding order.
    fn symbols(&self, previous: Option<&TableChoice>) -> Vec<i32> {
        let mut out: Vec<i32> = (0..self.bases.len())
            .map(|c| i32::from(self.bases[c]) - i32::from(self.predicted_base(previous, c)))
            .collect();
        if self.codes_anything() {
            let before = previous.map_or([0; CLASSES], |p| p.offsets);
            out.extend((0..CLASSES).map(|k| i32::from(self.offsets[k]) - i32::from(before[k])));
        }
        out
    }

    fn parse(
        channels: usize,
        previous: Option<&TableChoice>,
        table: u8,
        decoder: &mut SymbolDecoder,
    ) -> Result<Self, CoderError> {
        let bank = ScaleBank::get();
        // Offsets are coded only if some channel is: otherwise they stay the previous ones.
        let mut choice = TableChoice {
            bases: Vec::with_capacity(channels),
            offsets: previous.map_or([0; CLASSES], |p| p.offsets),
        };
        for c in 0..channels {
            // The bases so far are channels 0..c: all `predicted_base` reads.
            let predicted = choice.predicted_base(previous, c);
            let base = i64::from(predicted) + i64::from(bank.decode(table, decoder)?);
            let base = u8::try_from(base)
                .ok()
                .filter(|&b| b <= UNCHANGED)
                .ok_or_else(|| CoderError::Payload(format!("table index {base} out of range")))?;
            choice.bases.push(base);
        }
        if choice.codes_anything() {
            for offset in choice.offsets.iter_mut() {
                let v = i64::from(*offset) + i64::from(bank.decode(table, decoder)?);
                *offset = i8::try_from(v)
                    .map_err(|_| CoderError::Payload(format!("class offset {v} out of range")))?;
            }
        }
        Ok(choice)
    }
}

/// The bank index that codes `values` in the fewest bits.
fn best_index(values: &[i32]) -> u8 {
    ScaleBank::get().cheapest_index(values, 0..SCALES as u8)
}

/// The change of each element from its prediction.
fn changes(latent: &[i32], prediction: &[i32]) -> Vec<i32> {
    latent
        .iter()
        .zip(prediction)
        .map(|(a, b)| a.wrapping_sub(*b))
        .collect()
}

/// The first payload byte's flag that says a motion field follows.
pub const MOTION_FLAG: u8 = 0x80;

/// The frame a predicted frame is coded against, as encoder and decoder both hold it: its
/// latent, and its table choice if it was a predicted frame itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceFrame {
    pub latent: Vec<i32>,
    pub tables: Option<TableChoice>,
}

/// What coding one predicted frame depends on besides its own latent.
#[derive(Clone, Copy)]
pub struct PredictionContext<'a> {
    /// The latent the frame is predicted as: the reference, moved by the motion field if one
    /// is sent.
    pub prediction: &'a [i32],
    /// The reference's table choice, if it was a predicted frame.
    pub previous: Option<&'a TableChoice>,
    pub shape: LatentShape,
}

/// A predicted frame ready for the ANS coder: the payload's leading bytes, the (table, symbol)
/// items of its stream in decoding order, and the frame's table choice.
pub struct PredictedItems<'b> {
    pub leading: Vec<u8>,
    pub items: Vec<(&'b CategoricalTable, i32)>,
    pub choice: TableChoice,
}

/// The encoder's trade in [`PredictionContext::refine`]: squared latent error per bit, and the
/// farthest an element may stay from its unrounded latent.
#[derive(Debug, Clone, Copy)]
pub struct RefineWeights {
    pub lambda: f64,
    pub max_keep: f32,
}

impl PredictionContext<'_> {
    /// The tables [`encode_items`](Self::encode_items) would choose for `latent`, without
    /// coding it.
    pub fn choose_tables(&self, latent: &[i32]) -> TableChoice {
        let delta = changes(latent, self.prediction);
        GroupCosts::new(
            &delta,
            self.prediction,
            self.shape.channels,
            self.shape.width,
        )
        .choose(self.previous)
    }

    /// Codes the change from the prediction to `latent`. `motion` is the field that moved
    /// the reference into the prediction, if one did.
    pub fn encode_items<'b>(
        &self,
        latent: &[i32],
        motion: Option<&MotionField>,
        bank: &'b ScaleBank,
    ) -> PredictedItems<'b> {
        let shape = self.shape;
        let delta = changes(latent, self.prediction);
        let costs = GroupCosts::new(&delta, self.prediction, shape.channels, shape.width);
        let choice = costs.choose(self.previous);
        let head = choice.symbols(self.previous);
        let table = best_index(&head);
        let mut items = Vec::with_capacity(head.len() + delta.len());
        let mut leading = vec![table];
        if let Some(field) = motion {
            let vector_table = best_index(&field.symbols());
            leading = vec![table | MOTION_FLAG, vector_table];
            field.push_items(bank, vector_table, &mut items);
        }
        for v in head {
            bank.push_symbols(table, v, &mut items);
        }
        let plane = shape.plane();
        for (c, indices) in choice.coded_channels() {
            let classes = &costs.classes[c * plane..][..plane];
            for (&v, &class) in delta[c * plane..][..plane].iter().zip(classes) {
                bank.push_symbols(indices[usize::from(class)], v, &mut items);
            }
        }
        PredictedItems {
            leading,
            items,
            choice,
        }
    }

    /// Encoder-only: re-decides each coded element of `latent` (the changes from the
    /// prediction under `choice`) between keeping the prediction and rounding the unrounded
    /// latent `exact`, whichever costs less in squared latent error plus `lambda` times its
    /// bits under the table its context selects. Keeping is allowed only where `exact` is
    /// within `max_keep`, which bounds each frame's error. Elements are visited in decoding
    /// order, so the contexts are those the decoder will see for the elements already decided.
    pub fn refine(
        &self,
        latent: &mut [i32],
        exact: &[f32],
        choice: &TableChoice,
        RefineWeights { lambda, max_keep }: RefineWeights,
    ) {
        let bank = ScaleBank::get();
        let (plane, width) = (self.shape.plane(), self.shape.width);
        let mut delta = vec![0i32; plane];
        for (c, indices) in choice.coded_channels() {
            let range = c * plane..(c + 1) * plane;
            let (p, f, v) = (
                &self.prediction[range.clone()],
                &exact[range.clone()],
                &mut latent[range],
            );
            for i in 0..plane {
                let class = context_class(p, &delta, width, i / width, i % width);
                let table = indices[class];
                let rounded = round_element(f[i]);
                let cost = |value: i32| {
                    let e = f64::from(f[i]) - f64::from(value);
                    e * e + lambda * bank.bits(table, value.wrapping_sub(p[i]))
                };
                let mut best = rounded;
                if (f[i] - p[i] as f32).abs() < max_keep && cost(p[i]) <= cost(rounded) {
                    best = p[i];
                }
                v[i] = best;
                delta[i] = best.wrapping_sub(p[i]);
            }
        }
    }
}

/// Checks a bank index byte, `None` where the payload ended before it.
fn table_byte(byte: Option<u8>) -> Result<u8, CoderError> {
    let table = byte.ok_or_else(|| CoderError::Payload("predicted frame too short".into()))?;
    Ok(crate::entropy::check_table_index(table)?)
}

/// Parses a predicted payload against its reference (of `shape`): the frame the encoder had,
/// which the next predicted frame is coded against.
pub fn parse(
    payload: &[u8],
    reference: &ReferenceFrame,
    shape: LatentShape,
    end: StreamEnd,
) -> Result<ReferenceFrame, CoderError> {
    let previous = reference.tables.as_ref();
    let reference = reference.latent.as_slice();
    let first = *payload
        .first()
        .ok_or_else(|| CoderError::Payload("empty predicted frame".into()))?;
    let moved = first & MOTION_FLAG != 0;
    let table = table_byte(Some(first & !MOTION_FLAG))?;
    let vector_table = if moved {
        Some(table_byte(payload.get(1).copied())?)
    } else {
        None
    };
    let words = &payload[1 + usize::from(moved)..];
    if previous.is_some_and(|p| p.bases.len() != shape.channels) {
        return Err(CoderError::Payload(
            "previous table choice has another size".into(),
        ));
    }
    if reference.len() != shape.elements() {
        return Err(CoderError::Payload(
            "reference latent has another size".into(),
        ));
    }
    let bank = ScaleBank::get();
    let mut decoder = SymbolDecoder::new(words, end)?;
    let mut latent = match vector_table {
        Some(t) => MotionField::parse(shape, t, &mut decoder)?.compensate(reference),
        None => reference.to_vec(),
    };
    let choice = TableChoice::parse(shape.channels, previous, table, &mut decoder)?;
    let (plane, width) = (shape.plane(), shape.width);
    let mut delta = vec![0i32; plane];
    for (c, indices) in choice.coded_channels() {
        let prediction = &mut latent[c * plane..][..plane];
        for row in 0..shape.height {
            for col in 0..width {
                let class = context_class(prediction, &delta, width, row, col);
                delta[row * width + col] = bank.decode(indices[class], &mut decoder)?;
            }
        }
        for (v, d) in prediction.iter_mut().zip(&delta) {
            *v = v.wrapping_add(*d);
        }
    }
    decoder.finish()?;
    Ok(ReferenceFrame {
        latent,
        tables: Some(choice),
    })
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

    fn shape(latent: &[i32], channels: usize, width: usize) -> LatentShape {
        LatentShape {
            channels,
            height: latent.len() / (channels * width),
            width,
        }
    }

    /// Codes and parses one frame; returns the payload's length and the choice.
    fn round_trip(
        latent: &[i32],
        reference: &[i32],
        previous: Option<&TableChoice>,
        channels: usize,
        width: usize,
    ) -> (usize, TableChoice) {
        let (payload, choice) = payload(latent, reference, previous, channels, width);
        let reference = ReferenceFrame {
            latent: reference.to_vec(),
            tables: previous.cloned(),
        };
        let shape = shape(latent, channels, width);
        let parsed = parse(&payload, &reference, shape, StreamEnd::Sealed).unwrap();
        assert_eq!(parsed.latent, latent);
        assert_eq!(parsed.tables.as_ref(), Some(&choice));
        (payload.len(), choice)
    }

    fn payload(
        latent: &[i32],
        reference: &[i32],
        previous: Option<&TableChoice>,
        channels: usize,
        width: usize,
    ) -> (Vec<u8>, TableChoice) {
        let context = PredictionContext {
            prediction: reference,
            previous,
            shape: shape(latent, channels, width),
        };
        let coded = context.encode_items(latent, None, ScaleBank::get());
        let mut payload = coded.leading;
        write_words(&mut payload, &encode(coded.items.into_iter()).unwrap());
        (payload, coded.choice)
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
        let (_, first) = round_trip(&latent, &reference, None, channels, width);
        // The next frame codes its choice against this one's.
        let next: Vec<i32> = latent
            .iter()
            .zip(noise(7, n, 2))
            .map(|(a, b)| a + b)
            .collect();
        round_trip(&next, &latent, Some(&first), channels, width);
        // Nothing changed: a few bytes, however many channels.
        let wide = noise(8, 64 * height * width, 5);
        let (still, _) = round_trip(&wide, &wide, None, 64, width);
        assert!(still <= 9, "{still} bytes");
    }

    #[test]
    fn a_moved_reference_parses_back_exactly_and_codes_a_pan_cheaply() {
        let shape = LatentShape {
            channels: 4,
            height: 12,
            width: 16,
        };
        let reference = noise(11, shape.elements(), 6);
        // The scene pans one element left: each element is its right neighbour's.
        let exact: Vec<f32> = (0..shape.elements())
            .map(|i| {
                let col = (i % shape.width + 1).min(shape.width - 1);
                reference[i - i % shape.width + col] as f32
            })
            .collect();
        let latent: Vec<i32> = exact.iter().map(|&v| v as i32).collect();
        let field = MotionField::estimate(&exact, &reference, shape);
        assert!(!field.is_zero());
        let prediction = field.compensate(&reference);
        let bank = ScaleBank::get();
        let context = |prediction| PredictionContext {
            prediction,
            previous: None,
            shape,
        };
        let coded = context(&prediction).encode_items(&latent, Some(&field), bank);
        let mut moved = coded.leading;
        assert_ne!(moved[0] & MOTION_FLAG, 0);
        write_words(&mut moved, &encode(coded.items.into_iter()).unwrap());
        let reference = ReferenceFrame {
            latent: reference,
            tables: None,
        };
        let parsed = parse(&moved, &reference, shape, StreamEnd::Sealed).unwrap();
        assert_eq!(parsed.latent, latent);
        assert_eq!(parsed.tables, Some(coded.choice));
        let still = context(&reference.latent).encode_items(&latent, None, bank);
        let still_bytes = still.leading.len() + 4 * encode(still.items.into_iter()).unwrap().len();
        assert!(
            moved.len() * 3 < still_bytes,
            "{} bytes with motion, {still_bytes} without",
            moved.len()
        );
        // Cut anywhere, the moved payload is an error or another latent, never a panic.
        for cut in 0..moved.len() {
            let _ = parse(&moved[..cut], &reference, shape, StreamEnd::Sealed);
        }
    }

    #[test]
    fn refining_keeps_a_lone_change_where_the_scene_is_still_but_not_where_it_moves() {
        let (height, width) = (16, 16);
        let shape = LatentShape {
            channels: 1,
            height,
            width,
        };
        // The top half moves (large values, large changes), the bottom half is still.
        let moves = noise(9, height * width, 3);
        let mut prediction = vec![0; height * width];
        let mut exact = vec![0.0f32; height * width];
        for i in 0..height * width / 2 {
            prediction[i] = 6;
            exact[i] = (6 + moves[i]) as f32;
        }
        // One element in each half moves by 0.7 where it would not otherwise have changed.
        let (moving, still) = (3 * width + 7, 12 * width + 7);
        exact[moving] = prediction[moving] as f32 + 0.7;
        exact[still] = 0.7;
        let mut latent: Vec<i32> = exact.iter().map(|v| v.round() as i32).collect();
        let context = PredictionContext {
            prediction: &prediction,
            previous: None,
            shape,
        };
        let tables = context.choose_tables(&latent);
        let weights = RefineWeights {
            lambda: 0.08,
            max_keep: 0.8,
        };
        context.refine(&mut latent, &exact, &tables, weights);
        assert_eq!(
            latent[still], 0,
            "a lone change in a still area costs too much"
        );
        assert_eq!(latent[moving], prediction[moving] + 1);
        // Refining never leaves an element farther than the bound from its latent.
        for (&v, &f) in latent.iter().zip(&exact) {
            assert!((v as f32 - f).abs() <= 0.8);
        }
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
        let shape = LatentShape {
            channels,
            height,
            width,
        };
        let context = PredictionContext {
            prediction: &reference,
            previous: None,
            shape,
        };
        let coded = context.encode_items(&latent, None, bank);
        let with_context = information_content(coded.items.iter().copied());
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
        let (payload, choice) = payload(&latent, &reference, None, channels, width);
        let parse_with = |bytes: &[u8], previous: Option<&TableChoice>| {
            let reference = ReferenceFrame {
                latent: reference.clone(),
                tables: previous.cloned(),
            };
            let shape = shape(&reference.latent, channels, width);
            parse(bytes, &reference, shape, StreamEnd::Sealed)
        };
        assert!(parse_with(&[], None).is_err());
        assert!(parse_with(&payload[..1], None).is_err());
        let mut bad = payload.clone();
        bad[0] = 64;
        assert!(parse_with(&bad, None).is_err());
        // A choice of another size cannot be the previous frame's.
        let other = TableChoice {
            bases: vec![0; channels + 1],
            offsets: [0; CLASSES],
        };
        assert!(parse_with(&payload, Some(&other)).is_err());
        // Against another previous choice the bases decode out of range, or to other tables:
        // an error or another latent, never a panic.
        let far = TableChoice {
            bases: vec![UNCHANGED; channels],
            offsets: [i8::MAX; CLASSES],
        };
        let _ = parse_with(&payload, Some(&far));
        let _ = parse_with(&payload, Some(&choice));
        for cut in 1..payload.len() {
            let _ = parse_with(&payload[..cut], None);
        }
        let mut flipped = payload.clone();
        for i in 1..flipped.len() {
            flipped[i] ^= 0xa5;
            let _ = parse_with(&flipped, None);
        }
    }
}
