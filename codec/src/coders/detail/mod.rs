//! The detail layer: what a base coder's frame still lacks, coded as a residual.
//!
//! The learned synthesis renders shapes well at low rates but cannot render fine detail, however
//! many bits it is given (its latent holds 128 numbers per 16×16 block, CHANGELOG.md "Why the curve
//! is flat"). The detail layer codes the difference between the source and the frame the
//! decoder will rebuild from the base layer, in fixed orthonormal transforms: an opponent
//! colour rotation (luma and two colour differences) and, per 8×8 block, an 8×8 DCT, four 4×4
//! DCTs or the 8×8 Haar transform of each plane (`Kernel`, the encoder's choice), quantized
//! uniformly with `step` (orthonormal, so the error is the same in pixels and coefficients).
//!
//! Coding: coefficients are read block by block (raster order), plane by plane, band by band
//! (`Scheme`). Each is coded under one of the scale bank's tables, chosen per frame for its
//! group: its plane, its frequency band (u + v, merged into `BANDS`), its block's activity
//! class (how many nonzero coefficients the same plane of the blocks left of and above it had),
//! the same coefficient of those blocks, the coefficients before it in its row and column and,
//! in colour-difference planes, the same coefficient of the planes before it: integers the
//! decoder already has, so the groups are exact on every machine.
//!
//! Payload: `mode`, the mask of groups used, one table byte per group used, the ANS words.
//! Where the base layer does not pay for itself the encoder leaves it out ([`DetailedCoder`]).

mod between;
mod context;
mod deblock;
mod intra;
mod motion;
mod predict;
mod rdo;
mod symbols;
mod tables;
mod transform;

use context::*;
use symbols::*;
use transform::*;

use super::{
    check_frame_size, round_element, round_near, CoderError, EncodedFrame, FrameCoder, LatentFrame,
    ResidualCoding,
};
use crate::container::FrameType;
use crate::entropy::{self, CategoricalTable, ScaleBank, StreamEnd, SymbolDecoder};
use crate::varint;
use crate::RgbFrame;

/// Side of a transform block.
pub const BLOCK: usize = 8;
/// Coefficients of one block: three planes of 8×8.
const BLOCK_COEFFS: usize = 3 * BLOCK * BLOCK;
/// Frequency band groups: band `u + v` 0, 1, 2, 3–4, 5–7, 8–14.
const BANDS: usize = 6;
/// Activity classes of a block.
const CLASSES: usize = 4;
/// Classes of a coefficient by the same coefficient of the blocks left and above.
const NEIGHBOUR_CLASSES: usize = 3;
/// Coefficient groups of one plane (or, in [`Scheme::Banded`], of one cross class of a plane).
const PLANE_GROUPS: usize = BANDS * CLASSES * NEIGHBOUR_CLASSES;
/// Block flag groups: per plane, by how many of the blocks left and above have the flag set.
const FLAG_GROUPS: usize = 3 * 3;
/// A table group's number.
type Group = u16;

/// Squared error (in steps) one bit is worth when the encoder rounds an intra frame's
/// coefficients ([`DetailLayer::round_rd`]). On 4 frames of `ukui-wallpapers` over a q1 base,
/// bpp at 39 dB: 0.71 with plain rounding, 0.66 at 0.12, 0.70 at 0.25, 0.72 at 0.4.
const RATE_WEIGHT: f64 = 0.15;

/// How much less (squared error in steps plus [`RATE_WEIGHT`] per bit) a block must cost in
/// another transform before the encoder leaves the 8×8 DCT. Each transform is costed under
/// tables fitted to a frame all in it, but the blocks of all share the tables coded; without a
/// margin camera video lost 3 points of BD-rate against JPEG (4 frames of `bikes`, 8×8 or 4×4
/// DCTs: −36.8 → −33.6 %; with 1, −36.5 %, and the text and UI pictures kept their gain).
const KERNEL_MARGIN: f64 = 1.0;

/// The scheme the encoder writes.
const WRITTEN: Scheme = Scheme::Switched;

/// How far (in steps) a predicted frame's coefficient may lie from the previous frame's
/// before it is coded anew (`super::round_near`): the value the learned latent's
/// `TEMPORAL_DEAD_ZONE` was tuned to, so a still scene's detail costs almost nothing.
const TEMPORAL_DEAD_ZONE: f32 = 0.6;

/// A frame's residual: per block, its three colour-rotated planes of 8×8 samples.
type Residual = Vec<[[f32; 64]; 3]>;

/// Quantizes, codes and rebuilds the residual of frames of one size.
pub struct DetailLayer {
    step: f32,
    width: usize,
    height: usize,
    transform: Transform,
    /// Whether the groups a frame uses may be listed (version 11 on; `symbols`), or are
    /// always given by their mask.
    lists_groups: bool,
    /// How the stream lays out its motion fields (by its version).
    field_layout: motion::FieldLayout,
    /// Whether a moved frame's field and layer share one ANS stream (version 16 on), or each
    /// has its own.
    shares_stream: bool,
    /// How its ANS streams end (by the stream's version).
    stream_end: StreamEnd,
}

impl DetailLayer {
    /// The layer of a motion-compensated frame written with step byte `byte`, in a stream
    /// whose intra layer this is.
    fn moved(&self, byte: u8) -> DetailLayer {
        DetailLayer {
            lists_groups: self.lists_groups,
            field_layout: self.field_layout,
            shares_stream: self.shares_stream,
            stream_end: self.stream_end,
            ..DetailLayer::new(
                self.step * motion::step_factor(byte),
                self.width as u32,
                self.height as u32,
            )
        }
    }

    /// Of the stream's layer: appends to `out` a motion-compensated frame's `field` (its
    /// vectors predicted by `guide` where given) and the layer, at step byte `byte`, of what
    /// `under` misses of `frame`, keeping the tables `kept` where they cost little more: the
    /// layer, the squared error it leaves in the stream's steps (as the other ways of coding a
    /// frame count it) and the tables in force after it. Moved and bidirectional frames both
    /// end so.
    fn code_field_and_layer(
        &self,
        byte: u8,
        (frame, under): (&RgbFrame, &RgbFrame),
        field: &motion::MotionField,
        guide: motion::Guide,
        kept: &tables::MovedTables,
        out: &mut Vec<u8>,
    ) -> Result<(DetailFrame, f64, tables::MovedTables), CoderError> {
        let layer = self.moved(byte);
        let residual = layer.residual(frame, under);
        let (mut q, mut kernels, mut ratios) = layer.quantize(&residual);
        let grid = motion::MotionGrid::new(layer.width, layer.height);
        let mut directions = field.intra_directions(grid);
        let settled;
        let field = match directions.is_empty() {
            true => field,
            false => {
                let coded = (&mut q[..], &mut kernels[..], &mut ratios[..]);
                layer.code_intra_blocks(frame, under, &mut directions, coded);
                settled = field.with_directions(grid, &directions);
                &settled
            }
        };
        let layout = self.field_layout;
        let tables = if self.shares_stream {
            let field = field.symbols_keeping(grid, guide, layout, &kept.field)?;
            let layer = layer.symbols_keeping(WRITTEN, &q, Some(&kernels), &kept.layer)?;
            out.extend(&field.head);
            out.extend(&layer.head);
            let mut items = Vec::new();
            field.push_items(&mut items);
            layer.push_items(&mut items);
            entropy::write_stream(out, &entropy::encode(items.into_iter())?, self.stream_end);
            tables::MovedTables {
                field: field.in_force,
                layer: layer.in_force,
            }
        } else {
            let end = self.stream_end;
            let field = field.code_keeping(grid, guide, (layout, end), &kept.field, out)?;
            let (bytes, layer) = layer.code_keeping(WRITTEN, &q, Some(&kernels), &kept.layer)?;
            out.extend(bytes);
            tables::MovedTables { field, layer }
        };
        let factor = f64::from(motion::step_factor(byte));
        let error = squared_error(&ratios, &q) * factor * factor;
        let layer = DetailFrame {
            q,
            kernels,
            directions,
        };
        Ok((layer, error, tables))
    }

    /// A layer for `width`×`height` frames (multiples of [`BLOCK`]) at quantizer `step`.
    pub fn new(step: f32, width: u32, height: u32) -> Self {
        Self {
            step,
            width: width as usize,
            height: height as usize,
            transform: Transform::new(),
            lists_groups: true,
            field_layout: motion::FieldLayout::WRITTEN,
            shares_stream: true,
            stream_end: StreamEnd::WRITTEN,
        }
    }

    fn blocks(&self) -> (usize, usize) {
        (self.width / BLOCK, self.height / BLOCK)
    }

    /// Number of coefficients of a frame.
    pub fn coefficients(&self) -> usize {
        let (bw, bh) = self.blocks();
        bw * bh * BLOCK_COEFFS
    }

    /// Number of blocks of a frame.
    fn block_count(&self) -> usize {
        let (bw, bh) = self.blocks();
        bw * bh
    }
}

/// A base coder plus a detail layer. Each frame's payload is the base payload (its length
/// first, as a varint), then the detail layer's: a mode byte (`DetailMode`), then the
/// coefficients or, in a predicted frame, their change from the previous frame's, whichever
/// the encoder found shorter. The residual is taken against the frame the decoder rebuilds
/// from the base payload, and the coefficients are integers on both sides, so nothing drifts.
///
/// An intra frame may go without base layer (length 0): the layer is then the residual from
/// mid-grey, its DCs predicted from the blocks left and above. The encoder codes both and keeps
/// the cheaper in squared error plus `RATE_WEIGHT` per bit; on the held-out test set the DCT
/// alone wins at every detail step on most pictures (CHANGELOG.md, "The detail layer"). The frames
/// after one without base in its group of pictures go without too, since a predicted base
/// layer needs the previous frame's.
pub struct DetailedCoder {
    base: Box<dyn FrameCoder>,
    /// A second base coder that decodes what `base` wrote, on the encoder's side: the residual
    /// is taken against exactly the frame the decoder will have.
    mirror: Box<dyn FrameCoder>,
    layer: DetailLayer,
    /// The last frame's detail layer (what a predicted frame's change is from).
    previous: Option<DetailFrame>,
    /// Whether the last frame had a base layer: a predicted frame's base layer needs the
    /// previous frame's (a group of pictures whose intra frame has none has none).
    base_live: bool,
    /// The last frame as the decoder has it: what a motion-compensated frame is predicted
    /// from (the encoder rebuilds it; the decoder keeps what it synthesized).
    reference: Option<RgbFrame>,
    /// The learned residual of motion-compensated frames, for a base of the shallow kind.
    residual: Option<Box<dyn ResidualCoding>>,
    policy: BasePolicy,
    stream_end: StreamEnd,
    /// Whether an intra-coded layer over a base layer predicts its DCs too (files of
    /// version 7 on: a coarse learned picture leaves DCs that vary smoothly).
    predicts_base_dcs: bool,
    /// Whether every frame's picture is deblocked after its layer (version 10 on), not only
    /// motion-compensated frames'. The learned picture's 16×16 grid and the layer's 8×8 blocks
    /// leave edges in intra frames too: pictures at the levels against JPEG (2 frames each),
    /// `bikes` −24.0 → −28.3 %, `marble-data` −28.1 → −29.1 %, `ukui-wallpapers` −12.3 →
    /// −16.4 %; video against x264 medium unchanged (`bikes` +77.9 → +78.2 %, `cityCC0`
    /// +49.5 → +49.3 %).
    deblocks_all: bool,
    /// Whether a moved frame may keep the tables of the moved frame before it (version 12
    /// on; `tables`).
    keeps_tables: bool,
    /// The tables of the last frame if it was moved (what the next moved frame may keep).
    moved_tables: Option<tables::MovedTables>,
    /// Whether the file may hold bidirectional frames (version 13 on; `between`).
    reads_between: bool,
    /// Whether a bidirectional frame may give each unit of its field its own side (version 14
    /// on).
    reads_sides_per_unit: bool,
    /// The vectors of the last frame if it was moved: what a bidirectional frame's anchor
    /// leaves to guide its vectors.
    moved_vectors: Option<Vec<(i32, i32)>>,
    /// The tables of the last bidirectional frame in the group of pictures (what the next one
    /// may keep).
    between_tables: Option<tables::MovedTables>,
    /// Parsing: a bidirectional frame's anchor is hidden, and the next packet must show it.
    anchor_hidden: bool,
    /// Whether the packet that shows a hidden anchor is empty (version 16 on), or holds its
    /// mode.
    shows_empty: bool,
    /// Tests: a learned residual in every moved frame, whatever it costs.
    #[cfg(test)]
    always_residual: bool,
}

/// Where the encoder puts the learned picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BasePolicy {
    /// Every intra frame carries it, and the frames predicted from it move it: intra frames
    /// keep their base layer, and predicted frames are the previous picture moved, plus a
    /// learned residual where that pays (with [`DetailedCoder::with_residual`]), the detail
    /// layer refining both.
    #[default]
    Learned,
    /// Only where it pays: an intra frame goes without base layer when the detail layer
    /// alone costs less, and so does the rest of its group of pictures.
    Cheapest,
}

/// The last value of a detail layer's latent: how its picture is made before the layer is
/// added (`DetailedCoder::synthesize`).
const FROM_BASE: i32 = 0;
const FROM_MOTION: i32 = 1;
/// A bidirectional frame: its anchor's latent, then its own (`between`).
const FROM_BETWEEN: i32 = 2;
/// The hidden anchor shown.
const FROM_ANCHOR: i32 = 3;

/// A frame's detail layer as decoded: its coefficients and its blocks' transforms.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DetailFrame {
    q: Vec<i32>,
    kernels: Vec<Kernel>,
    /// Per block, the direction it is predicted in from its own frame (a moved frame's intra
    /// blocks' cells); empty where none is.
    directions: Vec<Option<intra::Direction>>,
}

impl DetailFrame {
    /// A layer whose blocks are all predicted from elsewhere.
    fn plain(q: Vec<i32>, kernels: Vec<Kernel>) -> Self {
        Self {
            q,
            kernels,
            directions: Vec::new(),
        }
    }
}

/// A detail layer the encoder made: its bytes (mode first), what the decoder will have, and
/// the squared error (in steps) it leaves; for a moved frame, the tables in force after it.
struct CodedLayer {
    payload: Vec<u8>,
    frame: DetailFrame,
    error: f64,
    tables: Option<tables::MovedTables>,
    /// A moved frame's vectors.
    vectors: Option<Vec<(i32, i32)>>,
}

/// Squared error in steps of coding `ratios` as `q`.
fn squared_error(ratios: &[f32], q: &[i32]) -> f64 {
    ratios
        .iter()
        .zip(q)
        .map(|(&r, &v)| (f64::from(r) - f64::from(v)).powi(2))
        .sum()
}

/// The mid-grey frame a frame without base layer adds its detail to.
fn grey(width: usize, height: usize) -> RgbFrame {
    RgbFrame::from_data(width as u32, height as u32, vec![128; 3 * width * height])
        .expect("the size matches")
}

/// A moved frame's latent before its step byte: its vectors, its blocks' modes (where the field
/// has them), its coefficients, then each block's transform.
fn moved_values(field: &motion::MotionField, layer: &DetailFrame) -> Vec<i32> {
    let vectors = &field.vectors;
    let modes = field.modes.as_deref().unwrap_or_default();
    let mut values = Vec::with_capacity(
        2 * vectors.len() + modes.len() + layer.q.len() + layer.kernels.len() + 2,
    );
    values.extend(vectors.iter().flat_map(|&(x, y)| [x, y]));
    values.extend(modes.iter().map(|m| m.index()));
    values.extend_from_slice(&layer.q);
    values.extend(layer.kernels.iter().map(|k| k.index()));
    values
}

/// Vectors as a latent carries them, x then y.
fn vectors_of(values: &[i32]) -> Vec<(i32, i32)> {
    values.chunks_exact(2).map(|v| (v[0], v[1])).collect()
}

/// `layer` (`q`, `kernels`) added to `picture`, then deblocked: what the decoder shows and the
/// next frame moves (every motion-compensated frame; from version 10, every frame). The
/// encoder and the decoder both make it here, so they cannot drift apart.
fn add_layer_deblocked(
    layer: &DetailLayer,
    picture: &mut RgbFrame,
    (q, kernels, directions): (&[i32], &[Kernel], &[Option<intra::Direction>]),
) {
    layer.add_predicting(picture, q, kernels, directions);
    deblock::deblock(picture, layer.step);
}

/// A payload: the base layer's length, the base layer, the detail layer.
fn assemble(base: &[u8], detail: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(base.len() + detail.len() + 4);
    varint::write_u64(&mut payload, base.len() as u64);
    payload.extend_from_slice(base);
    payload.extend_from_slice(detail);
    payload
}

/// What the encoder minimizes when it chooses between coding a frame with or without base
/// layer: squared error in steps plus [`RATE_WEIGHT`] per bit of the whole payload.
fn frame_cost(layer: &CodedLayer, payload_bytes: usize) -> f64 {
    layer.error + RATE_WEIGHT * 8.0 * payload_bytes as f64
}

impl DetailedCoder {
    /// `base` codes and decodes; `mirror` is a fresh coder of the same kind, for the encoder.
    pub fn new(
        base: Box<dyn FrameCoder>,
        mirror: Box<dyn FrameCoder>,
        step: f32,
        width: u32,
        height: u32,
    ) -> Self {
        Self {
            base,
            mirror,
            layer: DetailLayer::new(step, width, height),
            previous: None,
            base_live: false,
            reference: None,
            residual: None,
            policy: BasePolicy::default(),
            stream_end: StreamEnd::WRITTEN,
            predicts_base_dcs: true,
            deblocks_all: true,
            keeps_tables: true,
            moved_tables: None,
            reads_between: true,
            reads_sides_per_unit: true,
            moved_vectors: None,
            between_tables: None,
            anchor_hidden: false,
            shows_empty: true,
            #[cfg(test)]
            always_residual: false,
        }
    }

    /// Codes what motion compensation misses with `residual` (the learned residual): the
    /// encoder does so in every predicted frame under [`BasePolicy::Learned`].
    pub fn with_residual(mut self, residual: Box<dyn ResidualCoding>) -> Self {
        self.residual = Some(residual);
        self
    }

    /// Whether a predicted frame coded now is the previous picture moved (with the learned
    /// residual where it pays), as under [`BasePolicy::Learned`] with a residual coder.
    fn moves_learned(&self) -> bool {
        self.previous.is_some() && self.policy == BasePolicy::Learned && self.residual.is_some()
    }

    /// Whether the encoder adds a learned residual to every moved frame (tests only).
    fn forces_residual(&self) -> bool {
        #[cfg(test)]
        return self.always_residual;
        #[cfg(not(test))]
        false
    }

    /// Tests: the encoder adds a learned residual to every moved frame, whatever it costs.
    #[cfg(test)]
    pub(crate) fn always_add_residual(mut self) -> Self {
        self.always_residual = true;
        self
    }

    /// The picture the last frame coded or decoded shows (the encoder's copy of what the
    /// decoder will have).
    #[cfg(test)]
    pub(crate) fn shown(&self) -> Option<&RgbFrame> {
        self.reference.as_ref()
    }

    /// Where the encoder puts the learned picture ([`BasePolicy`]).
    pub fn with_policy(mut self, policy: BasePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Whether a payload's detail layer (after the base) is the previous picture moved.
    pub fn moves_previous(detail: &[u8]) -> bool {
        let first = detail.first().copied();
        first == Some(mode_byte(DetailMode::Motion, WRITTEN))
            || matches!(first, Some(between::BETWEEN_MODE | between::ANCHOR_MODE))
    }

    /// A payload's base layer (the learned coder's payload, empty for a frame without one)
    /// and its detail layer.
    pub fn split(payload: &[u8]) -> Result<(&[u8], &[u8]), CoderError> {
        let mut rest = payload;
        let len = varint::read_u64(&mut rest)
            .map_err(|e| CoderError::Payload(format!("base layer length: {e}")))?;
        if len > rest.len() as u64 {
            return Err(CoderError::Payload(format!(
                "base layer of {len} bytes in a payload of {}",
                rest.len()
            )));
        }
        Ok(rest.split_at(len as usize))
    }

    /// The layer of a motion-compensated frame written with step byte `byte`.
    fn moved_layer(&self, byte: u8) -> DetailLayer {
        self.layer.moved(byte)
    }

    /// `picture` with the residual the layer `frame` describes added: what the decoder shows.
    fn rebuilt(&self, mut picture: RgbFrame, frame: &DetailFrame) -> RgbFrame {
        self.add_layer(&mut picture, &frame.q, &frame.kernels);
        picture
    }

    /// Adds the stream's layer (not a moved frame's) to `picture`, deblocked where the file
    /// says so.
    fn add_layer(&self, picture: &mut RgbFrame, q: &[i32], kernels: &[Kernel]) {
        if self.deblocks_all {
            add_layer_deblocked(&self.layer, picture, (q, kernels, &[]));
        } else {
            self.layer.add_to(picture, q, kernels);
        }
    }

    /// The motion of `frame` from `reference`, its bits weighed at the detail step, and the
    /// prediction it makes (each block in the mode that predicts it best, where the file's
    /// fields have modes).
    fn estimate_motion(
        &self,
        frame: &RgbFrame,
        reference: &RgbFrame,
    ) -> (motion::MotionField, RgbFrame) {
        let lambda = motion::LAMBDA_PER_STEP * f64::from(self.layer.step);
        let mut field = motion::estimate(frame, reference, lambda);
        let mut prediction = motion::compensate(reference, &field.vectors);
        if self.layer.field_layout.has_modes() {
            let layer = self.moved_layer(motion::MOVED_STEP_BYTE);
            let intra = self.layer.field_layout.has_intra();
            let modes = layer.choose_modes(frame, &prediction, intra);
            field.modes = Some(modes);
            let grid = motion::MotionGrid::new(self.layer.width, self.layer.height);
            if field.settle_intra_blocks(grid) {
                prediction = motion::compensate(reference, &field.vectors);
            }
            motion::apply_modes(&mut prediction, field.modes.as_deref().unwrap_or_default());
            layer.predict_open_loop(frame, &mut prediction, &field.intra_directions(grid));
        }
        (field, prediction)
    }

    /// A predicted frame without base layer, coded as the previous picture moved block by
    /// block (`motion`) plus the layer of what that misses: the layer, with the picture the
    /// decoder will show.
    fn encode_moved(
        &self,
        frame: &RgbFrame,
        reference: &RgbFrame,
    ) -> Result<(CodedLayer, RgbFrame), CoderError> {
        let (field, prediction) = self.estimate_motion(frame, reference);
        self.moved_detail(frame, prediction, &field)
    }

    /// The detail layer of a motion-compensated frame whose picture before the layer is
    /// `under` (the prediction, with the learned residual if there is one): the layer (mode
    /// byte, step byte, `field`, coefficients) and the picture the decoder will show.
    fn moved_detail(
        &self,
        frame: &RgbFrame,
        under: RgbFrame,
        field: &motion::MotionField,
    ) -> Result<(CodedLayer, RgbFrame), CoderError> {
        let byte = motion::MOVED_STEP_BYTE;
        let mut payload = vec![mode_byte(DetailMode::Motion, WRITTEN), byte];
        let kept = self.kept_tables();
        let (frame, error, tables) = self.layer.code_field_and_layer(
            byte,
            (frame, &under),
            field,
            None,
            &kept,
            &mut payload,
        )?;
        let coded = CodedLayer {
            payload,
            error,
            frame,
            tables: Some(tables),
            vectors: Some(field.vectors.clone()),
        };
        let mut shown = under;
        let layer = &self.moved_layer(byte);
        let frame = &coded.frame;
        add_layer_deblocked(
            layer,
            &mut shown,
            (&frame.q, &frame.kernels, &frame.directions),
        );
        Ok((coded, shown))
    }

    /// The tables a moved frame coded now may keep: the last frame's if it was moved and the
    /// file keeps tables, else none.
    fn kept_tables(&self) -> tables::MovedTables {
        match (&self.moved_tables, self.keeps_tables) {
            (Some(kept), true) => kept.clone(),
            _ => tables::MovedTables::default(),
        }
    }

    /// A predicted frame coded as the previous picture moved, plus the learned residual of
    /// what that misses where it pays, plus the detail layer of what both miss: the payload,
    /// the layer and the picture shown.
    fn encode_moved_learned(
        &mut self,
        frame: &RgbFrame,
        reference: &RgbFrame,
    ) -> Result<(Vec<u8>, CodedLayer, RgbFrame), CoderError> {
        let (field, prediction) = self.estimate_motion(frame, reference);
        let mut coder = self.residual.take().expect("checked by the caller");
        let best = self.cheapest_residual(coder.as_mut(), frame, &prediction, &field);
        self.residual = Some(coder);
        best
    }

    /// The cheapest (squared error plus [`RATE_WEIGHT`] per bit) of the moved picture
    /// `prediction` with its detail layer alone, or with the learned residual at each of
    /// `coder`'s rates under it.
    fn cheapest_residual(
        &self,
        coder: &mut dyn ResidualCoding,
        frame: &RgbFrame,
        prediction: &RgbFrame,
        field: &motion::MotionField,
    ) -> Result<(Vec<u8>, CodedLayer, RgbFrame), CoderError> {
        let (detail, shown) = self.moved_detail(frame, prediction.clone(), field)?;
        let payload = assemble(&[], &detail.payload);
        let mut best = (frame_cost(&detail, payload.len()), payload, detail, shown);
        coder.prepare(frame, prediction);
        // Coarsest first: where the cheapest residual does not pay, a finer one, which costs
        // more bits for the same kind of correction, is not tried (it rarely pays either,
        // and each try is an analysis-sized synthesis and a detail layer).
        for rate in (0..coder.rates()).rev() {
            let (learned, latent) = coder.encode(rate)?;
            let mut under = prediction.clone();
            coder.add_to(&mut under, &latent);
            let (detail, shown) = self.moved_detail(frame, under, field)?;
            let payload = assemble(&learned, &detail.payload);
            let cost = frame_cost(&detail, payload.len());
            // (A payload starting with a base length of 0 has no residual yet.)
            let forced = self.forces_residual() && best.1.first() == Some(&0);
            if cost < best.0 || forced {
                best = (cost, payload, detail, shown);
            } else {
                break;
            }
        }
        Ok((best.1, best.2, best.3))
    }

    /// The frame coded with its base layer: the base, the picture it rebuilds, the detail
    /// layer over it and the payload of both. An intra frame under [`BasePolicy::Learned`]
    /// with a learned residual coder tries each of the base's intra rates and keeps the
    /// cheapest (squared error plus [`RATE_WEIGHT`] per bit), so the learned picture's rate
    /// follows the content. (The base coders then hold the last rate's latent, not the kept
    /// one's; that is harmless because the frames after it are moved pictures, which never
    /// predict from the base's latent.)
    #[allow(clippy::type_complexity)]
    fn encode_over_base(
        &mut self,
        frame: &RgbFrame,
        frame_type: FrameType,
    ) -> Result<(EncodedFrame, RgbFrame, CodedLayer, Vec<u8>), CoderError> {
        let intra = frame_type == FrameType::Intra || self.previous.is_none();
        let rates = match (intra, self.policy, &self.residual) {
            (true, BasePolicy::Learned, Some(_)) => self.base.intra_rates(),
            _ => 1,
        };
        let mut best: Option<(f64, (EncodedFrame, RgbFrame, CodedLayer, Vec<u8>))> = None;
        for rate in 0..rates {
            self.base.set_intra_rate(rate);
            let base = self.base.encode(frame, frame_type)?;
            let rebuilt = self.mirror.decode(base.frame_type, &base.payload)?;
            let residual = self.layer.residual(frame, &rebuilt);
            let detail = self.encode_detail(&residual, base.frame_type, true)?;
            let payload = assemble(&base.payload, &detail.payload);
            let cost = frame_cost(&detail, payload.len());
            if best.as_ref().is_none_or(|b| cost < b.0) {
                best = Some((cost, (base, rebuilt, detail, payload)));
            }
        }
        self.base.set_intra_rate(0);
        Ok(best.expect("at least one rate").1)
    }

    /// The detail layer of a frame's `residual`; `with_base` says whether the frame has a
    /// base layer (without, or in files of version 7 on, intra coefficients' DCs are
    /// predicted). A predicted frame's layer is the change from the previous frame's where
    /// that is shorter.
    fn encode_detail(
        &self,
        residual: &Residual,
        frame_type: FrameType,
        with_base: bool,
    ) -> Result<CodedLayer, CoderError> {
        let layer = &self.layer;
        let coded = |mode: DetailMode, values: &[i32], kernels: Option<&[Kernel]>| {
            let mut out = vec![mode_byte(mode, WRITTEN)];
            out.extend(layer.code(WRITTEN, values, kernels)?);
            Ok::<_, CoderError>(out)
        };
        let (q, kernels, ratios) = layer.quantize(residual);
        let values = if with_base && !self.predicts_base_dcs {
            q.clone()
        } else {
            layer.predict_dcs(&q)
        };
        let mut best = CodedLayer {
            payload: coded(DetailMode::Intra, &values, Some(&kernels))?,
            error: squared_error(&ratios, &q),
            frame: DetailFrame::plain(q, kernels),
            tables: None,
            vectors: None,
        };
        if let (FrameType::Predicted, Some(previous)) = (frame_type, &self.previous) {
            let ratios = layer.ratios(residual, &previous.kernels);
            let q = round_near(&ratios, &previous.q, TEMPORAL_DEAD_ZONE);
            let change: Vec<i32> = q.iter().zip(&previous.q).map(|(&a, &b)| a - b).collect();
            let payload = coded(DetailMode::Change, &change, None)?;
            if payload.len() < best.payload.len() {
                best = CodedLayer {
                    payload,
                    error: squared_error(&ratios, &q),
                    frame: DetailFrame::plain(q, previous.kernels.clone()),
                    tables: None,
                    vectors: None,
                };
            }
        }
        Ok(best)
    }
}

impl DetailedCoder {
    /// Parses a motion-compensated frame's field and layer (the bytes after the mode byte).
    /// `kept` are the tables it may keep from the frame before.
    fn parse_moved(
        &mut self,
        mut detail: &[u8],
        kept: tables::MovedTables,
    ) -> Result<LatentFrame, CoderError> {
        if self.previous.is_none() {
            return Err(CoderError::NoReference);
        }
        let (&byte, rest) = detail
            .split_first()
            .ok_or_else(|| CoderError::Payload("motion frame: no step byte".into()))?;
        detail = rest;
        let guided = motion::Guided {
            guide: None,
            sides: false,
        };
        let (field, layer, tables) = self.parse_field_and_layer(detail, guided, &kept)?;
        let mut values = moved_values(&field, &layer);
        values.push(i32::from(byte));
        values.push(FROM_MOTION);
        self.moved_vectors = Some(field.vectors);
        self.previous = Some(layer);
        self.moved_tables = Some(tables);
        self.base_live = false;
        Ok(LatentFrame::plain(values))
    }

    /// Reads what [`DetailLayer::code_field_and_layer`] wrote: the field (its
    /// vectors predicted by `guide` where given), the layer, and the tables in force after
    /// them.
    fn parse_field_and_layer(
        &self,
        mut detail: &[u8],
        guided: motion::Guided,
        kept: &tables::MovedTables,
    ) -> Result<(motion::MotionField, DetailFrame, tables::MovedTables), CoderError> {
        let grid = motion::MotionGrid::new(self.layer.width, self.layer.height);
        let end = self.stream_end;
        let (field, q, kernels, tables) = if self.layer.shares_stream {
            let field_tables = motion::FieldTables::read(
                &mut detail,
                self.layer.field_layout,
                guided.sides,
                &kept.field,
            )?;
            let layer_tables =
                self.layer
                    .read_tables(Scheme::Switched, &mut detail, &kept.layer)?;
            let mut decoder = SymbolDecoder::new(detail, end)?;
            let field = field_tables.parse_symbols(grid, guided, &mut decoder)?;
            let (q, kernels) = self
                .layer
                .parse_symbols(&layer_tables, &mut decoder, true)?;
            decoder.finish()?;
            let tables = tables::MovedTables {
                field: field_tables.in_force,
                layer: layer_tables.in_force,
            };
            (field, q, kernels, tables)
        } else {
            let layout = self.layer.field_layout;
            let (field, field_tables) = motion::MotionField::parse_keeping(
                &mut detail,
                grid,
                end,
                layout,
                guided,
                &kept.field,
            )?;
            let (q, kernels, layer_tables) =
                self.layer
                    .parse_keeping(Scheme::Switched, detail, end, true, &kept.layer)?;
            let tables = tables::MovedTables {
                field: field_tables,
                layer: layer_tables,
            };
            (field, q, kernels, tables)
        };
        let layer = DetailFrame {
            q,
            kernels,
            directions: field.intra_directions(grid),
        };
        Ok((field, layer, tables))
    }

    /// Splits the end of a latent into what comes before a layer, the layer's coefficients and
    /// its blocks' transforms (each block's `Kernel::index`).
    fn layer_parts<'a>(&self, values: &'a [i32]) -> (&'a [i32], &'a [i32], Vec<Kernel>) {
        let (coefficients, blocks) = (self.layer.coefficients(), self.layer.block_count());
        let n = coefficients + blocks;
        assert!(values.len() >= n, "latent from another coder");
        let (front, detail) = values.split_at(values.len() - n);
        let (detail, kernels) = detail.split_at(coefficients);
        let kernels = kernels
            .iter()
            .map(|&i| Kernel::ALL[(i as usize).min(2)])
            .collect();
        (front, detail, kernels)
    }
}

impl FrameCoder for DetailedCoder {
    fn supports_prediction(&self) -> bool {
        self.base.supports_prediction()
    }

    fn encode_pair(
        &mut self,
        frame: &RgbFrame,
        next: &RgbFrame,
    ) -> Result<(EncodedFrame, EncodedFrame), CoderError> {
        self.encode_between(frame, next)
    }

    fn encode(
        &mut self,
        frame: &RgbFrame,
        frame_type: FrameType,
    ) -> Result<EncodedFrame, CoderError> {
        check_frame_size(frame, self.layer.width as u32, self.layer.height as u32)?;
        let (width, height) = (self.layer.width, self.layer.height);
        let grey = || grey(width, height);
        let predicted = frame_type == FrameType::Predicted && self.previous.is_some();
        let moves_learned = predicted && self.moves_learned();
        if let Some(reference) = self.reference.take_if(|_| moves_learned) {
            let coded = self.encode_moved_learned(frame, &reference);
            let (payload, layer, shown) = match coded {
                Ok(coded) => coded,
                Err(e) => {
                    self.reference = Some(reference);
                    return Err(e);
                }
            };
            self.previous = Some(layer.frame);
            self.moved_tables = layer.tables;
            self.moved_vectors = layer.vectors;
            self.reference = Some(shown);
            self.base_live = false;
            return Ok(EncodedFrame {
                frame_type: FrameType::Predicted,
                payload,
            });
        }
        if predicted && !self.base_live {
            // A group of pictures whose intra frame has no base layer goes on without: each
            // frame is the layer alone, or its change, or the previous picture moved plus a
            // layer, whichever costs least.
            let residual = self.layer.residual(frame, &grey());
            let detail = self.encode_detail(&residual, FrameType::Predicted, false)?;
            let mut payload = assemble(&[], &detail.payload);
            let cost = frame_cost(&detail, payload.len());
            let mut shown = self.rebuilt(grey(), &detail.frame);
            let mut kept = detail;
            if let Some(reference) = &self.reference {
                let (moved, moved_shown) = self.encode_moved(frame, reference)?;
                let moved_payload = assemble(&[], &moved.payload);
                if frame_cost(&moved, moved_payload.len()) < cost {
                    (payload, shown, kept) = (moved_payload, moved_shown, moved);
                }
            }
            self.previous = Some(kept.frame);
            self.moved_tables = kept.tables;
            self.moved_vectors = kept.vectors;
            self.reference = Some(shown);
            return Ok(EncodedFrame {
                frame_type: FrameType::Predicted,
                payload,
            });
        }
        let (base, rebuilt, detail, payload) = self.encode_over_base(frame, frame_type)?;
        if base.frame_type == FrameType::Intra && self.policy == BasePolicy::Cheapest {
            // Where the base does not help (synthetic pictures, text, fine steps), the detail
            // layer alone costs less: the encoder tries both.
            let residual = self.layer.residual(frame, &grey());
            let alone = self.encode_detail(&residual, FrameType::Intra, false)?;
            let payload_alone = assemble(&[], &alone.payload);
            if frame_cost(&alone, payload_alone.len()) < frame_cost(&detail, payload.len()) {
                self.reference = Some(self.rebuilt(grey(), &alone.frame));
                self.previous = Some(alone.frame);
                self.forget_motion();
                self.base_live = false;
                return Ok(EncodedFrame {
                    frame_type: FrameType::Intra,
                    payload: payload_alone,
                });
            }
        }
        self.reference = Some(self.rebuilt(rebuilt, &detail.frame));
        self.previous = Some(detail.frame);
        self.forget_motion();
        self.base_live = true;
        Ok(EncodedFrame {
            frame_type: base.frame_type,
            payload,
        })
    }

    fn parse(&mut self, frame_type: FrameType, payload: &[u8]) -> Result<LatentFrame, CoderError> {
        match self.parse_between(frame_type, payload) {
            Ok(Some(latent)) => return Ok(latent),
            Ok(None) => {}
            // A frame that fails leaves nothing for the next to keep or show.
            Err(e) => {
                self.forget_motion();
                return Err(e);
            }
        }
        // Only a moved frame parsed whole leaves tables for the next one to keep.
        let kept = self
            .moved_tables
            .take()
            .filter(|_| self.keeps_tables)
            .unwrap_or_default();
        let (base, detail) = Self::split(payload)?;
        let (&mode, detail) = detail
            .split_first()
            .ok_or_else(|| CoderError::Payload("no detail layer".into()))?;
        let bad_mode =
            || CoderError::Payload(format!("detail mode {mode} in a {frame_type:?} frame"));
        let (kind, scheme) = parse_mode(mode).ok_or_else(bad_mode)?;
        if kind != DetailMode::Intra && frame_type != FrameType::Predicted {
            return Err(bad_mode());
        }
        let with_base = !base.is_empty();
        if kind == DetailMode::Motion {
            if !with_base {
                return self.parse_moved(detail, kept);
            }
            // The learned residual over the moved picture: its latent goes first.
            let residual = self.residual.as_mut().ok_or_else(bad_mode)?.parse(base)?;
            let moved = self.parse_moved(detail, kept)?;
            let mut values = residual.values;
            values.extend(moved.values);
            return Ok(LatentFrame {
                values,
                scale: residual.scale,
            });
        }
        if with_base && frame_type == FrameType::Predicted && !self.base_live {
            return Err(CoderError::NoReference);
        }
        self.forget_motion();
        let mut latent = if with_base {
            self.base.parse(frame_type, base)?
        } else {
            LatentFrame::plain(Vec::new())
        };
        let read_kernels = kind == DetailMode::Intra && scheme == Scheme::Switched;
        let (mut values, kernels) =
            self.layer
                .parse(scheme, detail, self.stream_end, read_kernels)?;
        if (!with_base || self.predicts_base_dcs) && kind == DetailMode::Intra {
            self.layer.unpredict_dcs(&mut values)?;
        }
        let frame = match kind {
            // (A motion frame was parsed above.)
            DetailMode::Intra | DetailMode::Motion => DetailFrame::plain(values, kernels),
            DetailMode::Change => {
                // A layer of changes keeps the previous frame's transforms.
                let previous = self.previous.as_ref().ok_or(CoderError::NoReference)?;
                DetailFrame::plain(
                    super::add_changes(&previous.q, &values, "detail")?,
                    previous.kernels.clone(),
                )
            }
        };
        // The latent carries the coefficients, then each block's transform (`Kernel::index`),
        // then how the picture under the layer is made.
        latent.values.extend_from_slice(&frame.q);
        latent
            .values
            .extend(frame.kernels.iter().map(|k| k.index()));
        latent.values.push(FROM_BASE);
        self.previous = Some(frame);
        self.base_live = with_base;
        Ok(latent)
    }

    fn synthesize(&mut self, latent: &LatentFrame) -> RgbFrame {
        if let Some(frame) = self.synthesize_between(latent) {
            return frame;
        }
        let (&from, mut values) = latent
            .values
            .split_last()
            .expect("latent from another coder");
        let mut moved_step = None;
        if from == FROM_MOTION {
            let (&byte, rest) = values.split_last().expect("latent from another coder");
            moved_step = Some(byte.clamp(0, 255) as u8);
            values = rest;
        }
        let (front, detail, kernels) = self.layer_parts(values);
        let grey = || grey(self.layer.width, self.layer.height);
        let mut directions = Vec::new();
        let mut frame = if from == FROM_MOTION {
            // `parse_moved` checked the field's size; a decoder that starts here has no
            // picture to move, and shows the layer over grey rather than fail. A learned
            // residual's latent comes before the field.
            let grid = motion::MotionGrid::new(self.layer.width, self.layer.height);
            let blocks = match self.layer.field_layout.has_modes() {
                true => grid.blocks().0 * grid.blocks().1,
                false => 0,
            };
            let (front, modes) = front.split_at(front.len().saturating_sub(blocks));
            let (learned, vectors) = front.split_at(front.len().saturating_sub(2 * grid.cells()));
            let modes: Vec<motion::BlockMode> = modes
                .iter()
                .map(|&m| motion::BlockMode::from_index(m))
                .collect();
            directions = motion::cell_directions(grid, &modes);
            let mut moved = match &self.reference {
                Some(reference) => motion::predict(reference, &vectors_of(vectors), &modes),
                None => grey(),
            };
            if let (false, Some(residual)) = (learned.is_empty(), &self.residual) {
                let latent = LatentFrame {
                    values: learned.to_vec(),
                    scale: latent.scale,
                };
                residual.add_to(&mut moved, &latent);
            }
            moved
        } else if front.is_empty() {
            grey()
        } else {
            self.base.synthesize(&LatentFrame {
                values: front.to_vec(),
                scale: latent.scale,
            })
        };
        match moved_step {
            Some(byte) => {
                let layer = (detail, &kernels[..], &directions[..]);
                add_layer_deblocked(&self.moved_layer(byte), &mut frame, layer)
            }
            None => self.add_layer(&mut frame, detail, &kernels),
        }
        self.reference = Some(frame.clone());
        frame
    }

    fn read_streams_as(&mut self, end: StreamEnd) {
        self.base.read_streams_as(end);
        self.mirror.read_streams_as(end);
        if let Some(residual) = &mut self.residual {
            residual.read_streams_as(end);
        }
        self.stream_end = end;
        self.layer.stream_end = end;
    }

    fn read_version(&mut self, version: u16) {
        self.predicts_base_dcs = version >= crate::container::FIRST_CONTEXT_VERSION;
        self.deblocks_all = version >= crate::container::FIRST_DEBLOCK_ALL_VERSION;
        self.layer.lists_groups = version >= crate::container::FIRST_LISTED_GROUPS_VERSION;
        self.keeps_tables = version >= crate::container::FIRST_KEPT_TABLES_VERSION;
        self.reads_between = version >= crate::container::FIRST_BIDIRECTIONAL_VERSION;
        self.reads_sides_per_unit = version >= crate::container::FIRST_SIDES_PER_UNIT_VERSION;
        self.shows_empty = version >= crate::container::FIRST_EMPTY_PACKET_VERSION;
        self.layer.shares_stream = version >= crate::container::FIRST_SHARED_STREAM_VERSION;
        self.layer.field_layout = if version >= crate::container::FIRST_INTRA_BLOCKS_VERSION {
            motion::FieldLayout::Intra
        } else if version >= crate::container::FIRST_BLOCK_MODES_VERSION {
            motion::FieldLayout::Modes
        } else if version >= crate::container::FIRST_COARSE_CHANGES_VERSION {
            motion::FieldLayout::Coarse
        } else if version >= crate::container::FIRST_CLASSED_CHANGES_VERSION {
            motion::FieldLayout::Classes
        } else if version >= crate::container::FIRST_SPLIT_MOTION_VERSION {
            motion::FieldLayout::Split
        } else {
            motion::FieldLayout::Blocks
        };
        self.base.read_version(version);
        self.mirror.read_version(version);
        if let Some(residual) = &mut self.residual {
            residual.read_version(version);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coders::{PcaCoder, PcaModel, PixelCoder};
    use crate::model_file::TrainingInfo;
    use std::sync::Arc;

    /// Texture, edges and a colour ramp: something a coarse base layer gets wrong.
    fn test_frame(w: u32, h: u32, shift: u32) -> RgbFrame {
        let data = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w + shift, i / w);
                let edge = if (x / 7 + y / 5) % 2 == 0 { 200 } else { 40 };
                [edge, ((x * 9) ^ (y * 5)) as u8, (x * 2 + y) as u8]
            })
            .collect();
        RgbFrame::from_data(w, h, data).unwrap()
    }

    fn pixel_base(w: u32, h: u32, step: f32) -> DetailedCoder {
        let base = || -> Box<dyn FrameCoder> { Box::new(PixelCoder::new(64, w, h)) };
        DetailedCoder::new(base(), base(), step, w, h)
    }

    fn mse(a: &RgbFrame, b: &RgbFrame) -> f64 {
        let sum: f64 = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum();
        sum / a.data.len() as f64
    }

    #[test]
    fn the_transform_is_orthonormal() {
        let t = Transform::new();
        let block: [f32; 64] = std::array::from_fn(|i| ((i * 37) % 101) as f32 - 50.0);
        let coeffs = t.forward(&block);
        let energy = |v: &[f32; 64]| v.iter().map(|x| x * x).sum::<f32>();
        assert!((energy(&coeffs) / energy(&block) - 1.0).abs() < 1e-4);
        for (a, b) in t.inverse(&coeffs).iter().zip(&block) {
            assert!((a - b).abs() < 1e-3, "{a} {b}");
        }
        for (p, row) in COLOUR.iter().enumerate() {
            for (q, other) in COLOUR.iter().enumerate() {
                let dot: f32 = row.iter().zip(other).map(|(a, b)| a * b).sum();
                assert!((dot - f32::from(u8::from(p == q))).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn the_detail_layer_adds_what_the_base_lacks_and_finer_steps_add_more() {
        let (w, h) = (48, 32);
        let frame = test_frame(w, h, 0);
        let base_only = PixelCoder::new(64, w, h)
            .encode(&frame, FrameType::Intra)
            .unwrap();
        let base = PixelCoder::new(64, w, h)
            .decode(FrameType::Intra, &base_only.payload)
            .unwrap();
        let mut errors = vec![mse(&frame, &base)];
        let mut sizes = vec![base_only.payload.len()];
        for step in [32.0, 8.0, 1.0] {
            let coded = pixel_base(w, h, step)
                .encode(&frame, FrameType::Intra)
                .unwrap();
            let decoded = pixel_base(w, h, step)
                .decode(FrameType::Intra, &coded.payload)
                .unwrap();
            errors.push(mse(&frame, &decoded));
            sizes.push(coded.payload.len());
        }
        assert!(errors.windows(2).all(|e| e[1] < e[0]), "{errors:?}");
        assert!(sizes.windows(2).all(|s| s[1] > s[0]), "{sizes:?}");
        // At step 1 only the final rounding to bytes is left.
        assert!(errors[3] < 0.5, "{errors:?}");
    }

    #[test]
    fn both_schemes_parse_what_they_code_and_banded_planes_stop_after_their_last_band() {
        let layer = DetailLayer::new(8.0, 32, 16);
        let mut q = vec![0i32; layer.coefficients()];
        q[0] = 5; // block 0, luma: the DC alone
        q[64 + 63] = -2; // block 0, red–blue: the last coefficient (band 5)
        q[BLOCK_COEFFS + 64 + 9] = 1; // block 1, red–blue, band 2
        q[BLOCK_COEFFS + 128 + 9] = 300; // block 1, green: an escape, same coefficient
        for (i, v) in q[5 * BLOCK_COEFFS..6 * BLOCK_COEFFS].iter_mut().enumerate() {
            *v = (i as i32 % 7) - 3;
        }
        let dct8 = vec![Kernel::Dct8; layer.block_count()];
        for scheme in [Scheme::Full, Scheme::Banded, Scheme::Switched] {
            let payload = layer.code(scheme, &q, None).unwrap();
            let parsed = layer.parse(scheme, &payload, StreamEnd::WRITTEN, false);
            assert_eq!(parsed.unwrap(), (q.clone(), dct8.clone()));
        }
        // Block 0's luma: flag, the DC, "no later band"; its red–blue: flag, all 64 values
        // and five "more" flags; its green: the flag alone.
        let symbols = layer.symbols(Scheme::Banded, &q, None);
        let block0 = &symbols[..3 + 1 + 64 + 5 + 1];
        assert_eq!(
            block0[..3].iter().map(|s| s.1).collect::<Vec<_>>(),
            [1, 5, 0]
        );
        assert_eq!(block0[3..].iter().filter(|s| s.1 == 1).count(), 1 + 5);
        assert_eq!(
            layer.symbols(Scheme::Full, &q, None)[..1 + 64 + 1 + 64 + 1].len(),
            131
        );
        // A green value whose red–blue twin is nonzero is in the next cross class.
        let context = Context::new(Scheme::Banded, layer.blocks());
        let mut alone = q.clone();
        alone[BLOCK_COEFFS + 64 + 9] = 0;
        assert_eq!(
            context.group(1, 2, 9, &q),
            context.group(1, 2, 9, &alone) + PLANE_GROUPS as Group
        );
    }

    /// The base layer's length in a payload (0: the frame has none).
    fn base_len(payload: &[u8]) -> usize {
        DetailedCoder::split(payload).unwrap().0.len()
    }

    #[test]
    fn where_the_base_does_not_pay_frames_go_without_it_and_rebuild_exactly() {
        let (w, h) = (48, 32);
        // Smooth ramps, which a coarse pixel base turns into steps the detail layer would
        // have to undo; without the base they cost a DC and a few low frequencies.
        let ramp = |shift: u32| {
            let data = (0..w * h)
                .flat_map(|i| {
                    let (x, y) = (i % w + shift, i / w);
                    [(x * 4) as u8, (y * 6) as u8, (x + y + 40) as u8]
                })
                .collect();
            RgbFrame::from_data(w, h, data).unwrap()
        };
        let mut enc = pixel_base(w, h, 4.0).with_policy(BasePolicy::Cheapest);
        let mut dec = pixel_base(w, h, 4.0);
        for i in 0..3 {
            let frame = ramp(i);
            let frame_type = if i == 0 {
                FrameType::Intra
            } else {
                FrameType::Predicted
            };
            let coded = enc.encode(&frame, frame_type).unwrap();
            assert_eq!(base_len(&coded.payload), 0, "frame {i} kept its base");
            let latent = dec.parse(coded.frame_type, &coded.payload).unwrap();
            assert_eq!(enc.previous.as_ref(), dec.previous.as_ref(), "frame {i}");
            let decoded = dec.synthesize(&latent);
            assert!(mse(&frame, &decoded) < 4.0 * 4.0, "frame {i}");
        }
        // A frame the base renders well keeps it: noise of four levels, which a pixel coder
        // of step 64 codes exactly in 2 bits a sample and a DCT cannot compact.
        let data = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                let level = |k: u32| ((((x * 7) ^ (y * 13)) + k) % 4 * 64) as u8;
                [level(0), level(1), level(3)]
            })
            .collect();
        let noise = RgbFrame::from_data(w, h, data).unwrap();
        let mut with_base = pixel_base(w, h, 4.0);
        let intra = with_base.encode(&noise, FrameType::Intra).unwrap();
        assert!(base_len(&intra.payload) > 0);
        // A predicted frame with a base layer cannot follow one without (its base would
        // predict from a frame the decoder never had): that payload, read as predicted.
        assert!(matches!(
            dec.parse(FrameType::Predicted, &intra.payload),
            Err(CoderError::NoReference)
        ));
    }

    #[test]
    fn every_block_transform_is_orthonormal_and_keeps_the_blocks_dc_first() {
        let t = Transform::new();
        let block: [f32; 64] = std::array::from_fn(|i| ((i * 53) % 97) as f32 - 40.0);
        let energy = |v: &[f32; 64]| v.iter().map(|x| x * x).sum::<f32>();
        for kernel in Kernel::ALL {
            let coeffs = t.forward_in(kernel, &block);
            assert!(
                (energy(&coeffs) / energy(&block) - 1.0).abs() < 1e-4,
                "{kernel:?}"
            );
            for (a, b) in t.inverse_in(kernel, &coeffs).iter().zip(&block) {
                assert!((a - b).abs() < 1e-3, "{kernel:?}: {a} {b}");
            }
            // Coefficient 0 is the 8×8 DC in each, so the DC predictor serves all.
            assert!(
                (coeffs[0] - t.forward(&block)[0]).abs() < 1e-3,
                "{kernel:?}"
            );
        }
        // Haar: a flat block but one step at its middle is its DC and one coefficient.
        let halves: [f32; 64] = std::array::from_fn(|i| if i < 32 { 50.0 } else { 10.0 });
        let haar = t.forward_in(Kernel::Haar, &halves);
        let nonzero: Vec<usize> = (0..64).filter(|&i| haar[i].abs() > 1e-3).collect();
        assert_eq!(nonzero, [0, 8]);
        // A step edge between the quarters' columns 3 and 4 leaves each 4×4 quarter flat: only
        // the DCs and their horizontal Haar difference (coefficient 1) are nonzero.
        let edge: [f32; 64] = std::array::from_fn(|i| if i % 8 < 4 { 100.0 } else { -20.0 });
        let split = t.forward_in(Kernel::Dct4, &edge);
        let nonzero: Vec<usize> = (0..64).filter(|&i| split[i].abs() > 1e-3).collect();
        assert_eq!(nonzero, [0, 1]);
        assert!(t.forward(&edge).iter().filter(|c| c.abs() > 1e-3).count() > 2);
    }

    #[test]
    fn switched_layers_carry_each_coded_blocks_transform() {
        use Kernel::{Dct4, Dct8, Haar};
        let layer = DetailLayer::new(8.0, 32, 16);
        let mut q = vec![0i32; layer.coefficients()];
        q[0] = 3; // block 0
        q[BLOCK_COEFFS + 70] = -1; // block 1
        q[2 * BLOCK_COEFFS + 1] = 2; // block 2
        q[4 * BLOCK_COEFFS + 5] = 1; // block 4
                                     // Block 3 codes nothing: its transform is not said, and it reads as the 8×8 DCT.
        let kernels = [Dct4, Dct8, Haar, Haar, Haar, Dct8, Dct8, Dct8];
        let payload = layer.code(Scheme::Switched, &q, Some(&kernels)).unwrap();
        let (parsed, read) = layer
            .parse(Scheme::Switched, &payload, StreamEnd::WRITTEN, true)
            .unwrap();
        assert_eq!(parsed, q);
        assert_eq!(read, [Dct4, Dct8, Haar, Dct8, Haar, Dct8, Dct8, Dct8]);
        // Per block with a nonzero coefficient, "not the 8×8 DCT" and, where it is not,
        // "Haar": 1 + 0 + 1 + 1 flags set of 4 + 3 said.
        let symbols = layer.symbols(Scheme::Switched, &q, Some(&kernels));
        let first = Scheme::Switched.groups() - Scheme::Switched.kernel_groups();
        let said: Vec<i32> = symbols
            .iter()
            .filter(|s| usize::from(s.0) >= first)
            .map(|s| s.1)
            .collect();
        assert_eq!(said, [1, 0, 0, 1, 1, 1, 1]);
    }

    #[test]
    fn text_like_blocks_leave_the_8x8_dct_and_decode_as_the_encoder_had() {
        let (w, h) = (64, 32);
        // One-pixel strokes on black: the 8×8 DCT rings, four 4×4s keep them tight.
        let text = |shift: u32| {
            let data = (0..w * h)
                .flat_map(|i| {
                    let (x, y) = (i % w + shift, i / w);
                    let stroke = x % 5 == 0 || (y % 7 == 0 && x % 11 < 6);
                    let v = if stroke { 230 } else { 10 };
                    [v, v, v]
                })
                .collect();
            RgbFrame::from_data(w, h, data).unwrap()
        };
        let mut enc = pixel_base(w, h, 24.0);
        let mut dec = pixel_base(w, h, 24.0);
        for i in 0..3 {
            let frame_type = if i == 0 {
                FrameType::Intra
            } else {
                FrameType::Predicted
            };
            let coded = enc.encode(&text(i % 2), frame_type).unwrap();
            let latent = dec.parse(coded.frame_type, &coded.payload).unwrap();
            assert_eq!(enc.previous.as_ref(), dec.previous.as_ref(), "frame {i}");
            let kernels = &dec.previous.as_ref().unwrap().kernels;
            // A frame the previous one moved predicts exactly has nothing left to code.
            let (_, detail) = DetailedCoder::split(&coded.payload).unwrap();
            let moved = detail[0] == mode_byte(DetailMode::Motion, WRITTEN);
            assert!(
                moved || kernels.iter().any(|&k| k != Kernel::Dct8),
                "frame {i}: every block in the 8×8 DCT"
            );
            let decoded = dec.synthesize(&latent);
            assert!(mse(&text(i % 2), &decoded) < 24.0 * 24.0, "frame {i}");
        }
    }

    #[test]
    fn dc_prediction_is_undone_exactly_and_overflow_is_corrupt() {
        let layer = DetailLayer::new(8.0, 32, 16);
        let q: Vec<i32> = (0..layer.coefficients() as i32)
            .map(|i| (i * 7919) % 301 - 150)
            .collect();
        let coded = layer.predict_dcs(&q);
        assert_ne!(coded, q);
        let mut back = coded.clone();
        layer.unpredict_dcs(&mut back).unwrap();
        assert_eq!(back, q);
        let mut forged = vec![0; layer.coefficients()];
        forged[0] = i32::MAX;
        forged[BLOCK_COEFFS] = i32::MAX;
        assert!(layer.unpredict_dcs(&mut forged).is_err());
    }

    #[test]
    fn a_plane_whose_bits_buy_too_little_is_zeroed_or_ended_early_and_a_strong_one_is_kept() {
        let layer = DetailLayer::new(8.0, 32, 8);
        let mut ratios = vec![0f32; layer.coefficients()];
        // Blocks 0 and 1: strong luma detail in many coefficients.
        for block in 0..2 {
            ratios[block * BLOCK_COEFFS..][..64].fill(6.3);
        }
        // Block 2: one lone coefficient in luma, which plain rounding keeps.
        ratios[2 * BLOCK_COEFFS + 9] = 0.55;
        // Block 3: a lone but large one, worth its bits.
        ratios[3 * BLOCK_COEFFS + 9] = 9.0;
        let q = layer.round_rd(&ratios);
        let plane = |b: usize| &q[b * BLOCK_COEFFS..][..64];
        assert!(plane(0).iter().all(|&v| v != 0));
        assert!(plane(2).iter().all(|&v| v == 0), "{:?}", plane(2));
        assert_ne!(plane(3)[9], 0);
        // The zeroed frame codes in fewer bytes than plain rounding's.
        let nearest: Vec<i32> = ratios.iter().map(|r| r.round() as i32).collect();
        assert_ne!(nearest[2 * BLOCK_COEFFS + 9], 0);
        assert!(
            layer.code(WRITTEN, &q, None).unwrap().len()
                < layer.code(WRITTEN, &nearest, None).unwrap().len()
        );
    }

    #[test]
    fn a_plane_ends_after_the_band_where_its_cost_is_least() {
        let layer = DetailLayer::new(8.0, 16, 8);
        let mut ratios = vec![0f32; layer.coefficients()];
        // Block 0's luma: a strong DC and band 1, then, alone in the last band, a value just
        // over one step that buys 1.6 step² of error for the zeros and band ends before it.
        ratios[0] = 9.0;
        ratios[1] = -4.2;
        ratios[63] = 1.3;
        // Block 1's luma: the same late value beside strong values in every band keeps it.
        ratios[BLOCK_COEFFS..][..64].fill(3.1);
        ratios[BLOCK_COEFFS + 63] = 1.3;
        let mut q: Vec<i32> = ratios.iter().map(|&r| round_element(r)).collect();
        let groups = layer.groups_of(&q);
        // Tables as a frame of busy planes would get them: zeros cost about a bit and a half.
        let indices: Vec<Option<u8>> = (0..WRITTEN.groups())
            .map(|g| Some(if g < WRITTEN.coeff_groups() { 12 } else { 128 }))
            .collect();
        layer.truncate_planes(&ratios, &mut q, &groups, &indices);
        assert_eq!(q[..3], [9, -4, 0]);
        assert_eq!(q[63], 0, "the lone late value stays");
        assert!(q[1..63].iter().all(|&v| v == 0 || v == -4));
        assert_eq!(q[BLOCK_COEFFS + 63], 1, "a plane coded to its end keeps it");
        assert!(q[BLOCK_COEFFS..][..63].iter().all(|&v| v == 3));
    }

    #[test]
    fn a_block_the_moved_picture_gets_wrong_keeps_less_of_it_and_the_rest_keep_all() {
        // The frame is its reference but for one block, even where the reference has
        // texture: coding that block from its moved picture would pay to take the texture
        // out, so it keeps only its cells' means (or a blur); the others keep everything.
        let (w, h) = (64, 48);
        let reference = motion::tests::texture(w, h, 0, 0);
        let mut frame = reference.clone();
        for y in 16..32 {
            for x in 16..32 {
                let i = (y * w as usize + x) * 3;
                frame.data[i..i + 3].copy_from_slice(&[120, 130, 140]);
            }
        }
        let layer = DetailLayer::new(8.0, w, h).moved(motion::MOVED_STEP_BYTE);
        let modes = layer.choose_modes(&frame, &reference, false);
        let bcols = motion::MotionGrid::new(w as usize, h as usize).blocks().0;
        for (b, &mode) in modes.iter().enumerate() {
            match b == bcols + 1 {
                true => assert_ne!(mode, motion::BlockMode::Moved),
                false => assert_eq!(mode, motion::BlockMode::Moved, "block {b}"),
            }
        }
    }

    #[test]
    fn predicted_frames_rebuild_exactly_what_the_encoder_had() {
        let (w, h) = (32, 32);
        let patches: Vec<f32> = (0..6)
            .flat_map(|i| crate::coders::pca::patches(&test_frame(w, h, i), 8))
            .collect();
        let model = Arc::new(PcaModel::fit(8, &patches, TrainingInfo::default()));
        let base =
            || -> Box<dyn FrameCoder> { Box::new(PcaCoder::new(model.clone(), 6, 24.0, w, h)) };
        let mut enc = DetailedCoder::new(base(), base(), 6.0, w, h);
        let mut dec = DetailedCoder::new(base(), base(), 6.0, w, h);
        let mut modes = Vec::new();
        for i in 0..4 {
            // A still frame, then the same frame again: its detail is coded as no change.
            let frame = test_frame(w, h, [0, 0, 3, 3][i]);
            let frame_type = if i == 0 {
                FrameType::Intra
            } else {
                FrameType::Predicted
            };
            let coded = enc.encode(&frame, frame_type).unwrap();
            let (_, detail) = DetailedCoder::split(&coded.payload).unwrap();
            modes.push(detail[0]);
            let latent = dec.parse(coded.frame_type, &coded.payload).unwrap();
            assert_eq!(enc.previous.as_ref(), dec.previous.as_ref(), "frame {i}");
            let decoded = dec.synthesize(&latent);
            assert!(mse(&frame, &decoded) < 6.0 * 6.0, "frame {i}");
        }
        assert_eq!(modes[0], mode_byte(DetailMode::Intra, WRITTEN));
        assert_eq!(
            modes[1],
            mode_byte(DetailMode::Change, WRITTEN),
            "{modes:?}"
        );
        // A predicted frame cannot be decoded without the frame before it.
        let coded = enc
            .encode(&test_frame(w, h, 3), FrameType::Predicted)
            .unwrap();
        let mut fresh = DetailedCoder::new(base(), base(), 6.0, w, h);
        assert!(fresh.parse(FrameType::Predicted, &coded.payload).is_err());
    }

    /// Smooth shapes (no base pays on them) moving 3 pixels right and 1 down a frame.
    fn moving_scene(w: u32, h: u32, t: i32) -> RgbFrame {
        let data = (0..(w * h) as i32)
            .flat_map(|i| {
                let (x, y) = (i % w as i32 - 3 * t, i / w as i32 - t);
                let blob = |cx: i32, cy: i32| {
                    let d = (x - cx).pow(2) + (y - cy).pow(2);
                    (180.0 * (-(d as f64) / 90.0).exp()) as i32
                };
                let v = 30 + blob(20, 20) + blob(40, 30) / 2;
                [
                    v.min(255) as u8,
                    (x * 2 + 60).clamp(0, 255) as u8,
                    (y * 3 + 20) as u8,
                ]
            })
            .collect();
        RgbFrame::from_data(w, h, data).unwrap()
    }

    #[test]
    fn moving_pictures_without_base_are_predicted_by_motion_and_rebuild_exactly() {
        let (w, h) = (64, 48);
        let scene = |t: i32| moving_scene(w, h, t);
        let mut enc = pixel_base(w, h, 4.0).with_policy(BasePolicy::Cheapest);
        let mut dec = pixel_base(w, h, 4.0);
        let mut motion_frames = 0;
        let mut payloads = Vec::new();
        for t in 0..5 {
            let frame = scene(t);
            let frame_type = if t == 0 {
                FrameType::Intra
            } else {
                FrameType::Predicted
            };
            let coded = enc.encode(&frame, frame_type).unwrap();
            assert_eq!(base_len(&coded.payload), 0, "frame {t} kept its base");
            let (_, detail) = DetailedCoder::split(&coded.payload).unwrap();
            motion_frames += usize::from(detail[0] == mode_byte(DetailMode::Motion, WRITTEN));
            let latent = dec.parse(coded.frame_type, &coded.payload).unwrap();
            let decoded = dec.synthesize(&latent);
            // The decoder shows exactly the picture the encoder predicts the next one from.
            assert_eq!(Some(&decoded), enc.reference.as_ref(), "frame {t}");
            assert!(mse(&frame, &decoded) < 4.0 * 4.0, "frame {t}");
            payloads.push(coded);
        }
        assert!(motion_frames >= 3, "{motion_frames} frames used motion");
        // Without the frame before it, or cut short, a motion frame is an error.
        let moved = payloads.iter().rfind(|c| {
            let (_, d) = DetailedCoder::split(&c.payload).unwrap();
            d[0] == mode_byte(DetailMode::Motion, WRITTEN)
        });
        let moved = moved.expect("a motion frame");
        let mut fresh = pixel_base(w, h, 4.0);
        assert!(fresh.parse(FrameType::Predicted, &moved.payload).is_err());
        for cut in 2..moved.payload.len() {
            let mut dec = pixel_base(w, h, 4.0);
            dec.parse(FrameType::Intra, &payloads[0].payload).unwrap();
            let _ = dec.parse(FrameType::Predicted, &moved.payload[..cut]);
        }
        // A motion frame may not be an intra frame.
        let mut dec = pixel_base(w, h, 4.0);
        dec.parse(FrameType::Intra, &payloads[0].payload).unwrap();
        assert!(dec.parse(FrameType::Intra, &moved.payload).is_err());
    }

    #[test]
    fn a_block_that_continues_the_pixels_above_it_is_predicted_from_them() {
        // As above, but the new block continues the row above it straight down: neither its
        // moved picture nor its means nor a blur predict it, the pixels above it do.
        let (w, h) = (64, 48);
        let reference = motion::tests::texture(w, h, 0, 0);
        let mut frame = reference.clone();
        let row = 3 * w as usize;
        for y in 16..32 {
            for x in 16..32 {
                let (i, above) = (y * row + 3 * x, 15 * row + 3 * x);
                frame.data.copy_within(above..above + 3, i);
            }
        }
        let layer = DetailLayer::new(8.0, w, h).moved(motion::MOVED_STEP_BYTE);
        let modes = layer.choose_modes(&frame, &reference, true);
        let bcols = motion::MotionGrid::new(w as usize, h as usize).blocks().0;
        let vertical = motion::BlockMode::Intra([intra::Direction::Vertical; 4]);
        for (b, &mode) in modes.iter().enumerate() {
            match b == bcols + 1 {
                true => assert_eq!(mode, vertical),
                false => assert_eq!(mode, motion::BlockMode::Moved, "block {b}"),
            }
        }
        // Without the intra mode (version 17) it keeps less of its moved picture.
        let modes = layer.choose_modes(&frame, &reference, false);
        assert!(!modes[bcols + 1].is_intra());
    }

    #[test]
    fn intra_blocks_rebuild_exactly_and_files_before_them_have_none() {
        // A moving scene where a patch that was a fine checkerboard becomes, from frame 2,
        // stripes that run down from the row above it: the patch's cells are best predicted
        // from the pixels the decoder has rebuilt above them.
        let (w, h) = (64, 48);
        let scene = |t: i32| {
            let mut frame = moving_scene(w, h, t);
            let row = 3 * w as usize;
            for y in 16..40 {
                for x in 24..48 {
                    let i = y * row + 3 * x;
                    match t < 2 {
                        true => {
                            let v = [40, 220][(x + y) % 2];
                            frame.data[i..i + 3].copy_from_slice(&[v, v, v]);
                        }
                        false => frame
                            .data
                            .copy_within(15 * row + 3 * x..15 * row + 3 * x + 3, i),
                    }
                }
            }
            frame
        };
        for version in [
            crate::container::FIRST_INTRA_BLOCKS_VERSION - 1,
            crate::container::VERSION,
        ] {
            let modes = moved_modes_rebuilt_exactly(version, (w, h), scene);
            let intra = modes.iter().filter(|&&m| m >= 3).count();
            match version {
                crate::container::VERSION => {
                    assert!(intra > 0, "no block was predicted from its frame")
                }
                _ => assert_eq!(intra, 0),
            }
        }
    }

    #[test]
    fn blocks_that_keep_less_of_their_moved_picture_rebuild_exactly() {
        // A moving scene with a fine checkerboard over a patch that goes smooth from frame 2:
        // the patch's moved picture carries a texture that is gone.
        let (w, h) = (64, 48);
        let scene = |t: i32| {
            let mut frame = moving_scene(w, h, t);
            for y in 16..40 {
                for x in 24..48 {
                    let i = (y * w as usize + x) * 3;
                    let v = match t < 2 {
                        true => [40, 220][(x + y) % 2],
                        false => 130,
                    };
                    frame.data[i..i + 3].copy_from_slice(&[v, v, v]);
                }
            }
            frame
        };
        let modes = moved_modes_rebuilt_exactly(crate::container::VERSION, (w, h), scene);
        let kept_less = modes.iter().filter(|&&m| m != 0).count();
        assert!(kept_less > 0, "every block kept its moved picture");
    }

    /// Codes frames 0 to 3 of `scene` (an intra frame, then predicted frames) in files of
    /// `version`, checks that a decoder rebuilds each exactly as the encoder did, and returns
    /// the block modes (latent values) of the moved frames among them.
    fn moved_modes_rebuilt_exactly(
        version: u16,
        (w, h): (u32, u32),
        scene: impl Fn(i32) -> RgbFrame,
    ) -> Vec<i32> {
        let mut enc = pixel_base(w, h, 4.0).with_policy(BasePolicy::Cheapest);
        let mut dec = pixel_base(w, h, 4.0);
        enc.read_version(version);
        dec.read_version(version);
        let grid = motion::MotionGrid::new(w as usize, h as usize);
        let blocks = grid.blocks().0 * grid.blocks().1;
        let mut modes = Vec::new();
        for t in 0..4 {
            let frame_type = [FrameType::Predicted, FrameType::Intra][usize::from(t == 0)];
            let coded = enc.encode(&scene(t), frame_type).unwrap();
            let (_, detail) = DetailedCoder::split(&coded.payload).unwrap();
            let latent = dec.parse(coded.frame_type, &coded.payload).unwrap();
            if detail[0] == mode_byte(DetailMode::Motion, WRITTEN) {
                // A moved frame's latent: its vectors, then its blocks' modes.
                modes.extend_from_slice(&latent.values[2 * grid.cells()..][..blocks]);
            }
            let decoded = dec.synthesize(&latent);
            let same = Some(&decoded) == enc.reference.as_ref();
            assert!(
                same,
                "version {version} frame {t}: the decoder rebuilt another picture"
            );
        }
        modes
    }

    /// The payloads of the moved frames among `frames` of a moving scene coded without base
    /// layer by an encoder of `version`, each checked to decode, in a decoder of that version,
    /// to the picture the encoder rebuilt.
    fn moved_payloads(version: u16, (w, h): (u32, u32), frames: i32) -> Vec<Vec<u8>> {
        let mut enc = pixel_base(w, h, 3.0).with_policy(BasePolicy::Cheapest);
        enc.read_version(version);
        let mut dec = pixel_base(w, h, 3.0);
        dec.read_version(version);
        let mut moved = Vec::new();
        for t in 0..frames {
            let frame_type = [FrameType::Predicted, FrameType::Intra][usize::from(t == 0)];
            let coded = enc.encode(&moving_scene(w, h, t), frame_type).unwrap();
            let latent = dec.parse(coded.frame_type, &coded.payload).unwrap();
            let shown = dec.synthesize(&latent);
            assert_eq!(Some(&shown), enc.reference.as_ref(), "version {version}");
            let (_, detail) = DetailedCoder::split(&coded.payload).unwrap();
            if detail[0] == mode_byte(DetailMode::Motion, WRITTEN) {
                moved.push(coded.payload);
            }
        }
        moved
    }

    #[test]
    fn a_moved_frames_field_and_layer_share_one_stream_from_version_16() {
        let (w, h) = (96, 64);
        let shared = crate::container::FIRST_SHARED_STREAM_VERSION;
        let encode = |version| moved_payloads(version, (w, h), 6);
        let (one, two) = (encode(shared), encode(shared - 1));
        assert!(one.len() >= 4, "{} moved", one.len());
        // The same frames, each without a stream's end and the field's length.
        for (one, two) in one.iter().zip(&two) {
            assert!(one.len() + 4 <= two.len(), "{} vs {}", one.len(), two.len());
        }
        // Read as the other layout, a moved frame is an error or a picture, never a panic.
        let mut intra = pixel_base(w, h, 3.0).with_policy(BasePolicy::Cheapest);
        let first = intra
            .encode(&moving_scene(w, h, 0), FrameType::Intra)
            .unwrap();
        for (payload, version) in [(&one[0], shared - 1), (&two[0], shared)] {
            let mut dec = pixel_base(w, h, 3.0);
            dec.read_version(version);
            dec.parse(FrameType::Intra, &first.payload).unwrap();
            if let Ok(latent) = dec.parse(FrameType::Predicted, payload) {
                dec.synthesize(&latent);
            }
        }
    }

    #[test]
    fn moved_frames_keep_the_tables_before_them_and_rebuild_exactly() {
        let (w, h) = (96, 64);
        let encode = |version| moved_payloads(version, (w, h), 8);
        let (kept, given) = (encode(12), encode(11));
        assert!(kept.len() >= 5 && given.len() >= 5, "{} moved", kept.len());
        let bytes = |p: &[Vec<u8>]| p[1..].iter().map(Vec::len).sum::<usize>();
        // The first moved frame has nothing to keep; the ones after write fewer table bytes.
        assert_eq!(kept[0], given[0]);
        assert!(
            bytes(&kept) + 4 * (kept.len() - 1) <= bytes(&given),
            "{} bytes keeping tables, {} giving them all",
            bytes(&kept),
            bytes(&given)
        );
        // A moved frame that keeps tables needs the moved frame before it.
        let mut intra = pixel_base(w, h, 3.0).with_policy(BasePolicy::Cheapest);
        let first = intra
            .encode(&moving_scene(w, h, 0), FrameType::Intra)
            .unwrap();
        let mut dec = pixel_base(w, h, 3.0);
        dec.read_version(12);
        dec.parse(FrameType::Intra, &first.payload).unwrap();
        assert!(dec.parse(FrameType::Predicted, &kept[2]).is_err());
        // Any byte of a moved frame that keeps tables changed, after the frames before it
        // parsed: an error or a picture, never a panic; and a failed frame leaves no tables.
        let (intra_payload, moved) = (first.payload.clone(), kept.clone());
        for at in 0..moved[2].len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut dec = pixel_base(w, h, 3.0);
                dec.read_version(12);
                dec.parse(FrameType::Intra, &intra_payload).unwrap();
                for m in &moved[..2] {
                    dec.parse(FrameType::Predicted, m).unwrap();
                }
                let mut forged = moved[2].clone();
                forged[at] ^= flip;
                if let Ok(latent) = dec.parse(FrameType::Predicted, &forged) {
                    dec.synthesize(&latent);
                } else {
                    assert_eq!(dec.moved_tables, None);
                }
            }
        }
    }

    #[test]
    fn corrupt_payloads_are_errors() {
        let (w, h) = (32, 16);
        let coded = pixel_base(w, h, 8.0)
            .encode(&test_frame(w, h, 0), FrameType::Intra)
            .unwrap();
        let mut dec = pixel_base(w, h, 8.0);
        for cut in 0..coded.payload.len() {
            let _ = dec.parse(FrameType::Intra, &coded.payload[..cut]);
        }
        assert!(dec.parse(FrameType::Intra, &[]).is_err());
        assert!(dec.parse(FrameType::Intra, &[200, 1]).is_err());
        // A change from the previous frame in an intra frame.
        let (_, detail) = DetailedCoder::split(&coded.payload).unwrap();
        let mode_at = coded.payload.len() - detail.len();
        let mut forged = coded.payload.clone();
        forged[mode_at] = mode_byte(DetailMode::Change, WRITTEN);
        assert!(dec.parse(FrameType::Intra, &forged).is_err());
        forged[mode_at] = 7;
        assert!(dec.parse(FrameType::Intra, &forged).is_err());
        // Every byte flipped in turn: an error or a frame, never a panic.
        for i in 0..coded.payload.len() {
            let mut bad = coded.payload.clone();
            bad[i] ^= 0x5a;
            if let Ok(latent) = dec.parse(FrameType::Intra, &bad) {
                dec.synthesize(&latent);
            }
        }
    }
}
