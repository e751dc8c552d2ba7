//! Bidirectional frames (version 13 on): a frame predicted from the frames either side of it.
//!
//! The packet of frame *t* carries frame *t + 1* first, hidden: the anchor, coded as any moved
//! frame is (`DetailedCoder::encode`), from frame *t − 1*. Then frame *t* itself, predicted
//! cell by cell as the mean of frame *t − 1* moved by the cell's vector and the anchor moved by
//! its opposite (`motion::compensate_between`), plus a layer at a coarser step
//! (`motion::BIDIRECTIONAL_STEP_BYTE`): nothing is predicted from a bidirectional frame, so
//! what its layer leaves out goes no further. Its vectors are predicted from half the anchor's
//! (`motion::Guide`), so a steady motion costs a flag per unit. The packet of frame *t + 1*
//! then shows the anchor. Packets stay in display order, one frame each, so seeking, segments
//! and players see a stream like any other.
//!
//! Where only one side shows what the frame does (a cut, something coming into view), the
//! frame may be predicted from that side alone (`motion::Side`): the encoder codes the three
//! ways and keeps the cheapest.
//!
//! Bytes of the detail layer of a bidirectional packet: mode [`BETWEEN_MODE`], the anchor's
//! payload length (varint) and payload (a moved frame's), the step byte, the side byte, the
//! motion field, the coefficients (keeping the tables of the group's previous bidirectional
//! frame where they cost little more). A showing packet's layer is the mode byte [`ANCHOR_MODE`] alone.

use super::{
    add_layer_deblocked, assemble, grey, mode_byte, motion, moved_values, tables, vectors_of,
    DetailLayer, DetailMode, DetailedCoder, FrameType, FROM_ANCHOR, FROM_BETWEEN, RATE_WEIGHT,
    WRITTEN,
};
use crate::coders::{CoderError, EncodedFrame, FrameCoder, LatentFrame};
use crate::varint;
use crate::RgbFrame;

/// The mode byte of a bidirectional frame's layer.
pub(super) const BETWEEN_MODE: u8 = 7;
/// The mode byte of the packet that shows a hidden anchor.
pub(super) const ANCHOR_MODE: u8 = 8;

impl DetailedCoder {
    /// Bytes of the learned residual inside a bidirectional frame's anchor, given the frame's
    /// detail layer (0 for any other layer, or one that does not split).
    pub fn hidden_learned_len(detail: &[u8]) -> usize {
        let Some((&BETWEEN_MODE, mut rest)) = detail.split_first() else {
            return 0;
        };
        match varint::read_u64(&mut rest) {
            Ok(len) if len <= rest.len() as u64 => {
                Self::split(&rest[..len as usize]).map_or(0, |(base, _)| base.len())
            }
            _ => 0,
        }
    }

    /// Forgets what a moved or bidirectional frame leaves to the next (after a frame that is
    /// neither).
    pub(super) fn forget_motion(&mut self) {
        self.moved_tables = None;
        self.moved_vectors = None;
        self.between_tables = None;
        self.anchor_hidden = false;
    }

    /// Whether the next two frames may be a bidirectional frame and its anchor: both would be
    /// moved pictures.
    fn bridges(&self) -> bool {
        self.moves_learned() && self.reference.is_some()
    }

    /// `frame` as a bidirectional frame whose anchor is `next`, and the packet that shows
    /// `next`; two moved frames where the coder cannot bridge them.
    pub(super) fn encode_between(
        &mut self,
        frame: &RgbFrame,
        next: &RgbFrame,
    ) -> Result<(EncodedFrame, EncodedFrame), CoderError> {
        if !self.bridges() {
            let first = self.encode(frame, FrameType::Predicted)?;
            return Ok((first, self.encode(next, FrameType::Predicted)?));
        }
        let before = self.reference.clone().expect("checked by bridges");
        let anchor = self.encode(next, FrameType::Predicted)?;
        let after = self
            .reference
            .as_ref()
            .expect("an anchor leaves its picture");
        let guide = motion::halved(self.moved_vectors.as_deref().unwrap_or_default());
        let mut detail = vec![BETWEEN_MODE];
        varint::write_u64(&mut detail, anchor.payload.len() as u64);
        detail.extend_from_slice(&anchor.payload);
        let kept = self.between_tables.take().unwrap_or_default();
        // Each side, each block's best side where they differ, and of those the one that
        // costs least (squared error plus `RATE_WEIGHT` per bit).
        let around = (&before, after);
        let mut coded = code_sides(&self.layer, frame, around, &guide, &kept)
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(per_unit) = code_per_unit(&self.layer, frame, around, &coded, &guide, &kept)? {
            coded.push(per_unit);
        }
        let rate_weight = between_rate_weight();
        let cost = |c: &CodedSide| c.error + rate_weight * 8.0 * c.bytes.len() as f64;
        let best = coded
            .into_iter()
            .min_by(|a, b| cost(a).total_cmp(&cost(b)))
            .expect("three sides tried");
        detail.extend(best.bytes);
        self.between_tables = Some(best.tables);
        let first = EncodedFrame {
            frame_type: FrameType::Predicted,
            payload: assemble(&[], &detail),
        };
        let second = EncodedFrame {
            frame_type: FrameType::Predicted,
            payload: match self.shows_empty {
                true => Vec::new(),
                false => assemble(&[], &[ANCHOR_MODE]),
            },
        };
        Ok((first, second))
    }

    /// Parses a bidirectional or showing packet; `None` for any other (which must not come
    /// while an anchor is hidden, unless it is intra).
    pub(super) fn parse_between(
        &mut self,
        frame_type: FrameType,
        payload: &[u8],
    ) -> Result<Option<LatentFrame>, CoderError> {
        // From version 16 the packet that shows a hidden anchor is empty: the same as the
        // showing mode with no base layer.
        let showing = [0, ANCHOR_MODE];
        let payload = match payload {
            [] if self.shows_empty => &showing[..],
            _ => payload,
        };
        let (base, detail) = Self::split(payload)?;
        let mode = detail.first().copied();
        let ours = self.reads_between
            && base.is_empty()
            && frame_type == FrameType::Predicted
            && matches!(mode, Some(BETWEEN_MODE | ANCHOR_MODE));
        if !ours {
            if self.anchor_hidden && frame_type == FrameType::Predicted {
                return Err(CoderError::Payload(
                    "a predicted frame where a hidden anchor should be shown".into(),
                ));
            }
            self.anchor_hidden = false;
            return Ok(None);
        }
        if mode == Some(ANCHOR_MODE) {
            if !self.anchor_hidden || detail.len() != 1 {
                return Err(CoderError::Payload(
                    "an anchor shown that was not hidden".into(),
                ));
            }
            self.anchor_hidden = false;
            return Ok(Some(LatentFrame::plain(vec![FROM_ANCHOR])));
        }
        if self.anchor_hidden {
            return Err(CoderError::Payload(
                "a bidirectional frame where a hidden anchor should be shown".into(),
            ));
        }
        self.parse_bidirectional(&detail[1..]).map(Some)
    }

    /// Parses a bidirectional frame's layer after its mode byte: its anchor (a moved frame,
    /// parsed as one), then its own field and coefficients.
    fn parse_bidirectional(&mut self, mut rest: &[u8]) -> Result<LatentFrame, CoderError> {
        let corrupt = |what: &str| CoderError::Payload(format!("bidirectional frame: {what}"));
        let len =
            varint::read_u64(&mut rest).map_err(|e| corrupt(&format!("anchor length: {e}")))?;
        if len > rest.len() as u64 {
            return Err(corrupt("the anchor runs past the payload"));
        }
        let (anchor, rest) = rest.split_at(len as usize);
        let moved = mode_byte(DetailMode::Motion, WRITTEN);
        if !Self::split(anchor).is_ok_and(|(_, d)| d.first() == Some(&moved)) {
            return Err(corrupt("its anchor is not a moved frame"));
        }
        let kept = self.between_tables.take().unwrap_or_default();
        let anchor = self.parse(FrameType::Predicted, anchor)?;
        let guide = motion::halved(self.moved_vectors.as_deref().unwrap_or_default());
        let (&byte, after) = rest.split_first().ok_or_else(|| corrupt("no step byte"))?;
        let (&side, after) = after.split_first().ok_or_else(|| corrupt("no side byte"))?;
        let per_unit = side == motion::SIDE_PER_UNIT && self.reads_sides_per_unit;
        if !per_unit {
            motion::Side::from_byte(side).ok_or_else(|| corrupt(&format!("side {side}")))?;
        }
        let guided = motion::Guided {
            guide: Some(&guide),
            sides: per_unit,
        };
        let (field, layer, tables) = self.parse_field_and_layer(after, guided, &kept)?;
        self.between_tables = Some(tables);
        self.anchor_hidden = true;
        let anchor_len = anchor.values.len();
        let mut values = anchor.values;
        values.extend(moved_values(&field, &layer));
        values.extend(field.sides.iter().flatten().map(|s| i32::from(s.byte())));
        values.push(i32::from(side));
        values.push(i32::from(byte));
        values.push(anchor_len as i32);
        values.push(FROM_BETWEEN);
        Ok(LatentFrame {
            values,
            scale: anchor.scale,
        })
    }

    /// Synthesizes a bidirectional frame (its anchor first, which becomes the reference) or
    /// shows the hidden anchor; `None` for any other latent.
    pub(super) fn synthesize_between(&mut self, latent: &LatentFrame) -> Option<RgbFrame> {
        let (w, h) = (self.layer.width, self.layer.height);
        let (&from, values) = latent.values.split_last()?;
        if from == FROM_ANCHOR {
            return Some(self.reference.clone().unwrap_or_else(|| grey(w, h)));
        }
        if from != FROM_BETWEEN {
            return None;
        }
        let (&anchor_len, values) = values.split_last().expect("latent from another coder");
        let (&byte, values) = values.split_last().expect("latent from another coder");
        let (&side, values) = values.split_last().expect("latent from another coder");
        let side = side.clamp(0, 255) as u8;
        // A side per unit: one value per cell after the layer.
        let (values, sides) = match side {
            motion::SIDE_PER_UNIT => {
                let cells = motion::MotionGrid::new(w, h).cells();
                let (values, sides) = values.split_at(values.len().saturating_sub(cells));
                let sides: Vec<motion::Side> = sides
                    .iter()
                    .map(|&s| {
                        motion::Side::from_byte(s.clamp(0, 255) as u8).unwrap_or(motion::Side::Both)
                    })
                    .collect();
                (values, Some(sides))
            }
            _ => (values, None),
        };
        let side = motion::Side::from_byte(side).unwrap_or(motion::Side::Both);
        let (anchor, own) = values.split_at((anchor_len as usize).min(values.len()));
        let before = self.reference.clone();
        let anchor = LatentFrame {
            values: anchor.to_vec(),
            scale: latent.scale,
        };
        let after = self.synthesize(&anchor);
        let (vectors, q, kernels) = self.layer_parts(own);
        let vectors = vectors_of(vectors);
        let mut frame = match (before, sides) {
            (Some(before), Some(sides)) => {
                motion::compensate_per_cell((&before, &after), &sides, &vectors)
            }
            (Some(before), None) => motion::compensate_between((&before, &after), side, &vectors),
            (None, _) => grey(w, h),
        };
        let layer = self.moved_layer(byte.clamp(0, 255) as u8);
        add_layer_deblocked(&layer, &mut frame, (q, &kernels, &[]));
        Some(frame)
    }
}

/// What [`code_between`] gives for each of [`motion::Side::ALL`], in that order. The three are
/// independent, so with more than one kernel thread (`AECODEC_THREADS`) they run at once.
fn code_sides(
    layer: &DetailLayer,
    frame: &RgbFrame,
    around: (&RgbFrame, &RgbFrame),
    guide: &[(i32, i32)],
    kept: &tables::MovedTables,
) -> Vec<Result<CodedSide, CoderError>> {
    let code = |side| code_between(layer, frame, around, side, guide, kept);
    if crate::threads::threads() < 2 {
        return motion::Side::ALL.map(code).into();
    }
    std::thread::scope(|scope| {
        let running = motion::Side::ALL.map(|side| scope.spawn(move || code(side)));
        running
            .into_iter()
            .map(|side| {
                side.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// A bidirectional frame coded one way.
struct CodedSide {
    /// Its own bytes: step byte, side byte, field and layer.
    bytes: Vec<u8>,
    /// The squared error they leave (in the stream's steps).
    error: f64,
    /// The tables in force after it.
    tables: tables::MovedTables,
    /// Its motion field and the prediction it makes.
    field: motion::MotionField,
    prediction: RgbFrame,
}

/// A bidirectional frame coded as predicted from `side`; `layer` is the stream's.
fn code_between(
    layer: &DetailLayer,
    frame: &RgbFrame,
    around: (&RgbFrame, &RgbFrame),
    side: motion::Side,
    guide: &[(i32, i32)],
    kept: &tables::MovedTables,
) -> Result<CodedSide, CoderError> {
    let byte = motion::BIDIRECTIONAL_STEP_BYTE;
    // Twice a moved frame's: on 30 frames of `bikes` against x264 medium, half as much
    // +43.4 %, twice +36.0 %, four times +35.7 %.
    let lambda = motion::LAMBDA_PER_STEP * f64::from(layer.moved(byte).step) / 2.0;
    let field = motion::estimate_between(frame, around, side, Some(guide), lambda);
    let prediction = motion::compensate_between(around, side, &field.vectors);
    code_predicted(layer, frame, (field, prediction), side.byte(), guide, kept)
}

/// A bidirectional frame coded with side byte `side`, its motion `field` and the `prediction`
/// it makes: the step byte, side byte, field and layer.
fn code_predicted(
    layer: &DetailLayer,
    frame: &RgbFrame,
    (field, prediction): (motion::MotionField, RgbFrame),
    side: u8,
    guide: &[(i32, i32)],
    kept: &tables::MovedTables,
) -> Result<CodedSide, CoderError> {
    let byte = motion::BIDIRECTIONAL_STEP_BYTE;
    let mut bytes = vec![byte, side];
    let (_, error, tables) = layer.code_field_and_layer(
        byte,
        (frame, &prediction),
        &field,
        Some(guide),
        kept,
        &mut bytes,
    )?;
    Ok(CodedSide {
        bytes,
        error,
        tables,
        field,
        prediction,
    })
}

/// Squared error (in the stream's steps) a bit is worth in a bidirectional frame's choices
/// (each block's side, and which way the frame is coded): [`RATE_WEIGHT`] scaled by the square
/// of its layer's coarser step, as what a bit buys grows so. 30 frames of `bikes` against x264
/// medium: +32.7 %; the blocks at half of it +33.5 %, twice +33.0 %, a quarter +34.5 %; the
/// frame's way at `RATE_WEIGHT` +33.1 %; both at `RATE_WEIGHT` +41.1 % (blocks took sides that
/// did not pay for their flags); without sides per unit +35.7 % (+36.4 % at `RATE_WEIGHT`).
/// `cityCC0`: +20.9 %, against +22.4 % without sides per unit.
fn between_rate_weight() -> f64 {
    RATE_WEIGHT * f64::from(motion::step_factor(motion::BIDIRECTIONAL_STEP_BYTE)).powi(2)
}

/// Bits a unit's side flags cost, about: "both" is what most units take.
fn side_bits(side: motion::Side) -> f64 {
    match side {
        motion::Side::Both => 0.3,
        _ => 3.0,
    }
}

/// A bidirectional frame whose units each take a side, chosen from `coded` (the frame coded
/// from each side, in [`motion::Side::ALL`]'s order) block by block: the block as one side's
/// field has it (whole or split, all of it from that side), or split with each cell taking
/// its vector and side from whichever side's field predicts it best; of those, the one of
/// least squared error plus [`between_rate_weight`] per bit of vectors, splits and sides.
/// None where every unit takes one side (that frame is coded already).
fn code_per_unit(
    layer: &DetailLayer,
    frame: &RgbFrame,
    around: (&RgbFrame, &RgbFrame),
    coded: &[CodedSide],
    guide: &[(i32, i32)],
    kept: &tables::MovedTables,
) -> Result<Option<CodedSide>, CoderError> {
    let grid = motion::MotionGrid::new(layer.width, layer.height);
    let (bcols, brows) = grid.blocks();
    let rate_weight = between_rate_weight();
    let step_squared = f64::from(layer.step).powi(2);
    let error = |k: usize, cell: (usize, usize), span: (usize, usize)| {
        motion::cells_squared_error(frame, &coded[k].prediction, cell, span) / step_squared
    };
    // What a unit whose top-left cell is `(col, row)` costs in vector and side bits, its
    // vector from side `k`'s field.
    let unit_bits = |k: usize, (col, row): (usize, usize)| {
        let i = row * grid.cols + col;
        let p = guide.get(i).copied().unwrap_or_default();
        motion::unit_vector_bits(coded[k].field.vectors[i], p) + side_bits(motion::Side::ALL[k])
    };
    let mut field = motion::MotionField {
        vectors: vec![(0, 0); grid.cells()],
        split: vec![false; bcols * brows],
        sides: None,
        modes: None,
    };
    let mut sides = vec![motion::Side::Both; grid.cells()];
    for by in 0..brows {
        for bx in 0..bcols {
            let b = by * bcols + bx;
            let (cells, n) = grid.block_cells(bx, by);
            let cells = &cells[..n];
            // (cost, split, the side each cell takes)
            let mut best: (f64, bool, [usize; 4]) = (f64::INFINITY, false, [0; 4]);
            for (k, side) in coded.iter().enumerate().take(3) {
                let split = side.field.split[b];
                let units = if split { cells } else { &cells[..1] };
                let mut bits: f64 = units.iter().map(|&cell| unit_bits(k, cell)).sum();
                if n > 1 {
                    bits += motion::split_bits(split);
                }
                let cost = error(k, cells[0], grid.block_span(bx, by)) + rate_weight * bits;
                if cost < best.0 {
                    best = (cost, split, [k; 4]);
                }
            }
            if n > 1 {
                let cell_cost =
                    |k: usize, cell| error(k, cell, (1, 1)) + rate_weight * unit_bits(k, cell);
                let mut cost = rate_weight * motion::split_bits(true);
                let mut taken = [0; 4];
                for (slot, &cell) in taken.iter_mut().zip(cells) {
                    let k = (0..3)
                        .min_by(|&a, &b| cell_cost(a, cell).total_cmp(&cell_cost(b, cell)))
                        .expect("three sides");
                    cost += cell_cost(k, cell);
                    *slot = k;
                }
                if cost < best.0 {
                    best = (cost, true, taken);
                }
            }
            field.split[b] = best.1;
            for (&(col, row), &k) in cells.iter().zip(&best.2) {
                let i = row * grid.cols + col;
                let v = coded[k].field.vectors[i];
                let p = guide.get(i).copied().unwrap_or_default();
                field.vectors[i] = if best.1 {
                    motion::legal_vector(v, p)
                } else {
                    v
                };
                sides[i] = motion::Side::ALL[k];
            }
        }
    }
    if sides.iter().all(|&s| s == sides[0]) {
        return Ok(None);
    }
    let prediction = motion::compensate_per_cell(around, &sides, &field.vectors);
    field.sides = Some(sides);
    let side = motion::SIDE_PER_UNIT;
    code_predicted(layer, frame, (field, prediction), side, guide, kept).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learned::coder::tests::{random_model_of, test_frame, SMALL_SHALLOW};
    use crate::learned::residual::tests::{detailed, scene};
    use motion::tests::mse;

    fn mode(payload: &[u8]) -> u8 {
        DetailedCoder::split(payload).unwrap().1[0]
    }

    /// An intra frame, then `pairs` pairs coded together: the packets in display order.
    fn coded_stream(enc: &mut DetailedCoder, w: u32, h: u32, pairs: u32) -> Vec<EncodedFrame> {
        let mut packets = vec![enc.encode(&scene(w, h, 0), FrameType::Intra).unwrap()];
        for p in 0..pairs {
            let t = 1 + 2 * p;
            let (first, second) = enc
                .encode_pair(&scene(w, h, t), &scene(w, h, t + 1))
                .unwrap();
            packets.extend([first, second]);
        }
        packets
    }

    #[test]
    fn bidirectional_frames_decode_as_the_encoder_coded_them_in_one_decoder_or_two() {
        let model = random_model_of(SMALL_SHALLOW);
        let (w, h) = (64, 48);
        let mut enc = detailed(&model, w, h, 6.0);
        let mut whole = detailed(&model, w, h, 6.0);
        // The player parses on one thread and synthesizes on another, each with its coder.
        let (mut parser, mut synthesizer) =
            (detailed(&model, w, h, 6.0), detailed(&model, w, h, 6.0));
        let mut packets = vec![enc.encode(&scene(w, h, 0), FrameType::Intra).unwrap()];
        let intra = &packets[0].payload;
        let first = whole.decode(FrameType::Intra, intra).unwrap();
        let latent = parser.parse(FrameType::Intra, intra).unwrap();
        assert_eq!(synthesizer.synthesize(&latent), first);
        for t in [1, 3, 5] {
            let (first, second) = enc
                .encode_pair(&scene(w, h, t), &scene(w, h, t + 1))
                .unwrap();
            assert_eq!(mode(&first.payload), BETWEEN_MODE, "frame {t}");
            assert_eq!(first.frame_type, FrameType::Predicted);
            // The packet that shows the anchor is empty (version 16 on).
            assert!(second.payload.is_empty());
            let anchor = enc.shown().cloned();
            packets.extend([first, second]);
            for (i, packet) in packets[packets.len() - 2..].iter().enumerate() {
                let shown = whole.decode(packet.frame_type, &packet.payload).unwrap();
                let latent = parser.parse(packet.frame_type, &packet.payload).unwrap();
                assert_eq!(
                    synthesizer.synthesize(&latent),
                    shown,
                    "frame {}",
                    t + i as u32
                );
                let source = scene(w, h, t + i as u32);
                // The anchor is shown as the encoder predicted from it; the frame between is
                // close to its source (its layer is four times as coarse as the intra one's).
                if i == 1 {
                    assert_eq!(Some(shown), anchor, "frame {}", t + 1);
                } else {
                    assert!(mse(&shown, &source) < 24.0 * 24.0, "frame {t}");
                }
            }
        }
    }

    /// The side byte of a bidirectional packet.
    fn side(payload: &[u8]) -> u8 {
        let mut rest = &DetailedCoder::split(payload).unwrap().1[1..];
        let len = varint::read_u64(&mut rest).unwrap() as usize;
        rest[len + 1]
    }

    #[test]
    fn a_frame_after_a_cut_is_predicted_from_its_anchor_alone() {
        let model = random_model_of(SMALL_SHALLOW);
        let (w, h) = (64, 48);
        let mut enc = detailed(&model, w, h, 6.0);
        let mut dec = detailed(&model, w, h, 6.0);
        let intra = enc.encode(&scene(w, h, 0), FrameType::Intra).unwrap();
        dec.decode(FrameType::Intra, &intra.payload).unwrap();
        let other = |t: u32| test_frame(w, h, 5 * t);
        let (first, second) = enc.encode_pair(&other(1), &other(2)).unwrap();
        assert_eq!(side(&first.payload), motion::Side::After.byte());
        let shown = dec.decode(FrameType::Predicted, &first.payload).unwrap();
        assert!(mse(&shown, &other(1)) < 24.0 * 24.0);
        assert_eq!(
            dec.decode(FrameType::Predicted, &second.payload)
                .ok()
                .as_ref(),
            enc.shown()
        );
        // An unknown side is an error.
        let mut forged = first.payload.clone();
        let at = forged.len() - DetailedCoder::split(&first.payload).unwrap().1.len();
        let mut rest = &forged[at + 1..];
        let len = varint::read_u64(&mut rest).unwrap() as usize;
        let side_at = forged.len() - rest.len() + len + 1;
        forged[side_at] = 3;
        let mut dec = detailed(&model, w, h, 6.0);
        dec.decode(FrameType::Intra, &intra.payload).unwrap();
        assert!(dec.parse(FrameType::Predicted, &forged).is_err());
    }

    #[test]
    fn a_frame_whose_halves_show_either_side_takes_a_side_per_unit_and_decodes_exactly() {
        let model = random_model_of(SMALL_SHALLOW);
        let (w, h) = (64, 48);
        let mut enc = detailed(&model, w, h, 6.0);
        // A cut after the intra frame, and a frame between whose left part still shows the
        // picture before it while the rest already shows the one after; the edge between
        // them runs through the middle of a block.
        let (before, after) = (scene(w, h, 0), test_frame(w, h, 10));
        let mut between = before.clone();
        for (k, pixel) in between.data.chunks_exact_mut(3).enumerate() {
            if k % w as usize >= 40 {
                pixel.copy_from_slice(&after.data[3 * k..3 * k + 3]);
            }
        }
        let intra = enc.encode(&before, FrameType::Intra).unwrap();
        let (first, second) = enc.encode_pair(&between, &after).unwrap();
        assert_eq!(side(&first.payload), motion::SIDE_PER_UNIT);
        let mut whole = detailed(&model, w, h, 6.0);
        let (mut parser, mut synthesizer) =
            (detailed(&model, w, h, 6.0), detailed(&model, w, h, 6.0));
        for packet in [&intra, &first, &second] {
            let shown = whole.decode(packet.frame_type, &packet.payload).unwrap();
            let latent = parser.parse(packet.frame_type, &packet.payload).unwrap();
            assert_eq!(synthesizer.synthesize(&latent), shown);
            if std::ptr::eq(packet, &first) {
                assert!(
                    mse(&shown, &between) < 12.0 * 12.0,
                    "{}",
                    mse(&shown, &between)
                );
            }
        }
        // Files before sides per unit do not have them (the intra frame is read as this
        // version's, since version 14 also changed learned intra payloads).
        let mut old = detailed(&model, w, h, 6.0);
        old.decode(FrameType::Intra, &intra.payload).unwrap();
        old.read_version(crate::container::FIRST_SIDES_PER_UNIT_VERSION - 1);
        assert!(old.parse(FrameType::Predicted, &first.payload).is_err());
    }

    #[test]
    fn bidirectional_packets_out_of_place_or_damaged_are_errors_never_panics() {
        let model = random_model_of(SMALL_SHALLOW);
        let (w, h) = (48, 32);
        let packets = coded_stream(&mut detailed(&model, w, h, 8.0), w, h, 2);
        let fresh = || {
            let mut dec = detailed(&model, w, h, 8.0);
            dec.parse(FrameType::Intra, &packets[0].payload).unwrap();
            dec
        };
        let p = |i: usize| &packets[i].payload[..];
        // Showing an anchor that was never hidden; skipping the packet that shows one.
        assert!(fresh().parse(FrameType::Predicted, p(2)).is_err());
        // The anchor shown by its mode, as files before version 16 show it, or by an empty
        // packet, which those files do not have.
        let empty = crate::container::FIRST_EMPTY_PACKET_VERSION;
        let mut old = detailed(&model, w, h, 8.0);
        old.read_version(empty - 1);
        let old = coded_stream(&mut old, w, h, 1);
        assert_eq!(old[2].payload, assemble(&[], &[ANCHOR_MODE]));
        assert!(packets[2].payload.is_empty());
        let now = crate::container::VERSION;
        for (version, stream, show, shown) in [
            (now, &packets, vec![], true),
            (now, &packets, assemble(&[], &[ANCHOR_MODE]), true),
            (empty - 1, &old, assemble(&[], &[ANCHOR_MODE]), true),
            (empty - 1, &old, vec![], false),
        ] {
            let mut dec = detailed(&model, w, h, 8.0);
            dec.read_version(version);
            dec.parse(FrameType::Intra, &stream[0].payload).unwrap();
            dec.parse(FrameType::Predicted, &stream[1].payload).unwrap();
            let parsed = dec.parse(FrameType::Predicted, &show);
            assert_eq!(parsed.is_ok(), shown, "version {version}, {show:?}");
        }
        let mut dec = fresh();
        dec.parse(FrameType::Predicted, p(1)).unwrap();
        assert!(dec.parse(FrameType::Predicted, p(3)).is_err());
        // Not in an intra frame, nor in files before bidirectional frames.
        assert!(fresh().parse(FrameType::Intra, p(1)).is_err());
        let mut old = fresh();
        old.read_version(crate::container::FIRST_BIDIRECTIONAL_VERSION - 1);
        assert!(old.parse(FrameType::Predicted, p(1)).is_err());
        // Without the intra frame before it.
        assert!(detailed(&model, w, h, 8.0)
            .parse(FrameType::Predicted, p(1))
            .is_err());
        // Cut anywhere, or any byte changed: an error or a picture.
        for cut in 0..p(1).len() {
            let _ = fresh().parse(FrameType::Predicted, &p(1)[..cut]);
        }
        for at in 0..p(1).len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut dec = fresh();
                let mut forged = p(1).to_vec();
                forged[at] ^= flip;
                match dec.parse(FrameType::Predicted, &forged) {
                    Ok(latent) => drop(dec.synthesize(&latent)),
                    // A frame that fails leaves nothing for the next to keep or show.
                    Err(_) => {
                        assert!(dec.moved_tables.is_none() && dec.between_tables.is_none());
                        assert!(!dec.anchor_hidden);
                    }
                }
            }
        }
    }
}
