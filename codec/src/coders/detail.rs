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

use super::{
    check_frame_size, round_element, round_near, CoderError, EncodedFrame, FrameCoder, LatentFrame,
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

/// How a frame's coefficients are ordered and grouped; the mode byte says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// The first layout (files of the first detail layer, still read): every coefficient of a plane whose
    /// flag is set, row by row, grouped by plane, band, activity and neighbours.
    Full,
    /// What the encoder writes: a set plane's coefficients band by band, each band but the
    /// last followed by a flag saying whether a later band has a nonzero coefficient (most
    /// planes stop after a few bands, so the decoder reads about a third of the symbols);
    /// colour-difference coefficients are grouped also by whether the same coefficient of the
    /// planes before them in the block is nonzero.
    Banded,
    /// What the encoder writes: [`Scheme::Banded`], each block in one of three transforms
    /// ([`Kernel`]), and coefficients grouped also by whether the coefficient before them in
    /// their row or column is nonzero. An intra-coded layer says each block's transform after
    /// its planes if one is set; a layer of changes keeps the previous frame's.
    Switched,
}

impl Scheme {
    /// Cross classes: 1 (luma) + 2 per colour-difference plane.
    const BANDED_SETS: usize = 1 + 2 * 2;

    /// Table groups of coefficients; the flags' follow.
    fn coeff_groups(self) -> usize {
        match self {
            Scheme::Full => 3 * PLANE_GROUPS,
            Scheme::Banded => Self::BANDED_SETS * PLANE_GROUPS,
            Scheme::Switched => Self::BANDED_SETS * PLANE_GROUPS * 2,
        }
    }

    /// Band-end flag groups: per plane and activity class, one per band but the last.
    fn end_groups(self) -> usize {
        match self {
            Scheme::Full => 0,
            Scheme::Banded | Scheme::Switched => 3 * CLASSES * (BANDS - 1),
        }
    }

    /// Transform flag groups: "not the 8×8 DCT" and "Haar, not 4×4 DCTs", each by how many of
    /// the blocks left and above are so.
    fn kernel_groups(self) -> usize {
        match self {
            Scheme::Full | Scheme::Banded => 0,
            Scheme::Switched => 2 * 3,
        }
    }

    fn groups(self) -> usize {
        self.coeff_groups() + FLAG_GROUPS + self.end_groups() + self.kernel_groups()
    }

    /// Bytes of the mask of groups a frame uses.
    fn mask_bytes(self) -> usize {
        self.groups().div_ceil(8)
    }
}

/// The transform of a block's three planes. Coefficient 0 is the block's DC in each, so the DC
/// predictor serves all three, and a coefficient's place says roughly how fine it is, so bands
/// and contexts do too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// One 8×8 DCT: smooth and textured pictures.
    Dct8,
    /// Four 4×4 DCTs ([`Transform::forward_split`]): detail that changes within the block.
    Dct4,
    /// The 8×8 Haar transform: sharp edges on flat ground (text, drawn interfaces), where the
    /// DCT's long basis functions ring.
    Haar,
}

impl Kernel {
    const ALL: [Kernel; 3] = [Kernel::Dct8, Kernel::Dct4, Kernel::Haar];

    /// Its number in a decoded latent.
    fn index(self) -> i32 {
        match self {
            Kernel::Dct8 => 0,
            Kernel::Dct4 => 1,
            Kernel::Haar => 2,
        }
    }
}

/// What decides a coefficient's table group beside its plane and band: counts of nonzero
/// coefficients of the blocks coded so far, per plane.
struct Context {
    scheme: Scheme,
    blocks_wide: usize,
    nonzeros: Vec<[u32; 3]>,
    /// The transforms of the blocks coded so far (a block that says nothing is in the 8×8 DCT).
    kernels: Vec<Kernel>,
}

impl Context {
    fn new(scheme: Scheme, (blocks_wide, blocks_high): (usize, usize)) -> Self {
        Self {
            scheme,
            blocks_wide,
            nonzeros: vec![[0; 3]; blocks_wide * blocks_high],
            kernels: vec![Kernel::Dct8; blocks_wide * blocks_high],
        }
    }

    /// The blocks left of and above `block`, those of them inside the frame.
    fn neighbours(&self, block: usize) -> impl Iterator<Item = usize> {
        let (bx, by) = (block % self.blocks_wide, block / self.blocks_wide);
        let left = (bx > 0).then(|| block - 1);
        let up = (by > 0).then(|| block - self.blocks_wide);
        left.into_iter().chain(up)
    }

    /// How many nonzero coefficients plane `p` of the blocks left of and above `block` had.
    fn around(&self, block: usize, p: usize) -> u32 {
        self.neighbours(block).map(|b| self.nonzeros[b][p]).sum()
    }

    /// The group of coefficient `i` of plane `p` of `block`; `q` holds every earlier block
    /// and the earlier planes of this one.
    fn group(&self, block: usize, p: usize, i: usize, q: &[i32]) -> Group {
        let same: u32 = self
            .neighbours(block)
            .map(|b| q[b * BLOCK_COEFFS + p * 64 + i].unsigned_abs())
            .sum();
        let class = activity_class(self.around(block, p));
        let neighbour = same.min(NEIGHBOUR_CLASSES as u32 - 1) as usize;
        let (u, v) = (i % 8, i / 8);
        let band = band_group(u, v);
        let here = &q[block * BLOCK_COEFFS..][..BLOCK_COEFFS];
        let plane = &here[p * 64..][..64];
        // In the switched scheme, whether the coefficient before it in the row or the column
        // (coded already: an earlier band, or earlier in this one) is nonzero.
        let template = match self.scheme {
            Scheme::Full | Scheme::Banded => 0,
            Scheme::Switched => {
                usize::from((u > 0 && plane[i - 1] != 0) || (v > 0 && plane[i - 8] != 0))
            }
        };
        let set = match self.scheme {
            Scheme::Full => p,
            Scheme::Banded | Scheme::Switched if p == 0 => 0,
            Scheme::Banded | Scheme::Switched => {
                let cross = (0..p).any(|earlier| here[earlier * 64 + i] != 0);
                1 + 2 * (p - 1) + usize::from(cross)
            }
        };
        let templates = 1 + usize::from(self.scheme == Scheme::Switched);
        let shared = (set * CLASSES + class) * NEIGHBOUR_CLASSES + neighbour;
        ((shared * templates + template) * BANDS + band) as Group
    }

    /// The group of the flag after band `band` of plane `p` of `block` ([`Scheme::Banded`]).
    fn end_group(&self, block: usize, p: usize, band: usize) -> Group {
        let class = activity_class(self.around(block, p));
        let base = self.scheme.coeff_groups() + FLAG_GROUPS;
        (base + (p * CLASSES + class) * (BANDS - 1) + band) as Group
    }

    /// The groups of the two flags that say `block`'s transform ([`Scheme::Switched`]):
    /// whether it is other than the 8×8 DCT, and then whether it is the Haar transform.
    fn kernel_groups(&self, block: usize) -> (Group, Group) {
        let count = |pred: fn(Kernel) -> bool| {
            self.neighbours(block)
                .filter(|&b| pred(self.kernels[b]))
                .count()
        };
        let base = self.scheme.coeff_groups() + FLAG_GROUPS + self.scheme.end_groups();
        let other = base + count(|k| k != Kernel::Dct8);
        let haar = base + 3 + count(|k| k == Kernel::Haar);
        (other as Group, haar as Group)
    }

    /// Appends the flags that say `kernel` for `block`, and records it.
    fn say_kernel(&mut self, block: usize, kernel: Kernel, symbols: &mut Vec<(Group, i32)>) {
        let (other, haar) = self.kernel_groups(block);
        symbols.push((other, i32::from(kernel != Kernel::Dct8)));
        if kernel != Kernel::Dct8 {
            symbols.push((haar, i32::from(kernel == Kernel::Haar)));
        }
        self.kernels[block] = kernel;
    }

    /// The group of the flag that says whether plane `p` of `block` has any nonzero
    /// coefficient.
    fn flag_group(&self, block: usize, p: usize) -> Group {
        let set = self
            .neighbours(block)
            .filter(|&b| self.nonzeros[b][p] > 0)
            .count();
        (self.scheme.coeff_groups() + 3 * p + set) as Group
    }

    /// Records a block once all its coefficients are known.
    fn done(&mut self, block: usize, coeffs: &[i32]) {
        for p in 0..3 {
            self.nonzeros[block][p] =
                coeffs[p * 64..][..64].iter().filter(|&&v| v != 0).count() as u32;
        }
    }
}

/// Smallest and largest quantizer step the detail layer takes.
pub use crate::container::{MAX_DETAIL_STEP as MAX_STEP, MIN_DETAIL_STEP as MIN_STEP};

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

/// What a frame's detail layer codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DetailMode {
    /// The coefficients themselves.
    Intra,
    /// Their change from the previous frame's (predicted frames only).
    Change,
}

/// The first payload byte of a frame's detail layer: what it codes, and how.
fn mode_byte(mode: DetailMode, scheme: Scheme) -> u8 {
    match (scheme, mode) {
        (Scheme::Full, DetailMode::Intra) => 0,
        (Scheme::Full, DetailMode::Change) => 1,
        (Scheme::Banded, DetailMode::Intra) => 2,
        (Scheme::Banded, DetailMode::Change) => 3,
        (Scheme::Switched, DetailMode::Intra) => 4,
        (Scheme::Switched, DetailMode::Change) => 5,
    }
}

/// The inverse of [`mode_byte`]; `None` for any other byte.
fn parse_mode(byte: u8) -> Option<(DetailMode, Scheme)> {
    Some(match byte {
        0 => (DetailMode::Intra, Scheme::Full),
        1 => (DetailMode::Change, Scheme::Full),
        2 => (DetailMode::Intra, Scheme::Banded),
        3 => (DetailMode::Change, Scheme::Banded),
        4 => (DetailMode::Intra, Scheme::Switched),
        5 => (DetailMode::Change, Scheme::Switched),
        _ => return None,
    })
}

/// Coefficient indices (`v·8 + u`) band by band (row-major within a band), and where each
/// band ends in that order.
struct BandOrder {
    order: [u8; 64],
    ends: [usize; BANDS],
}

impl BandOrder {
    fn get() -> &'static BandOrder {
        static ORDER: std::sync::OnceLock<BandOrder> = std::sync::OnceLock::new();
        ORDER.get_or_init(|| {
            let mut order = [0u8; 64];
            let mut ends = [0; BANDS];
            let mut at = 0;
            for (band, end) in ends.iter_mut().enumerate() {
                for i in 0..64 {
                    if band_group(i % 8, i / 8) == band {
                        order[at] = i as u8;
                        at += 1;
                    }
                }
                *end = at;
            }
            BandOrder { order, ends }
        })
    }

    /// The coefficient indices of `band`.
    fn band(&self, band: usize) -> &[u8] {
        let start = if band == 0 { 0 } else { self.ends[band - 1] };
        &self.order[start..self.ends[band]]
    }
}

fn band_group(u: usize, v: usize) -> usize {
    match u + v {
        0 => 0,
        1 => 1,
        2 => 2,
        3 | 4 => 3,
        5..=7 => 4,
        _ => 5,
    }
}

/// The last band of a plane's 64 values with a nonzero value; `None` for an all-zero plane.
fn last_band(plane: &[i32]) -> Option<usize> {
    (0..64)
        .filter(|&i| plane[i] != 0)
        .map(|i| band_group(i % 8, i / 8))
        .max()
}

fn activity_class(neighbour_nonzeros: u32) -> usize {
    match neighbour_nonzeros {
        0 => 0,
        1..=3 => 1,
        4..=12 => 2,
        _ => 3,
    }
}

/// How [`DetailLayer::round_rd`] rounds a coefficient `r` (in steps) whose nearest integer is
/// `n`, coded under bank table `index`: to `n` or one step nearer zero, whichever costs less in
/// squared error plus [`RATE_WEIGHT`] per bit; with that cost.
fn rd_rounding(r: f32, n: i32, index: u8) -> (i32, f64) {
    let bank = ScaleBank::get();
    let cost = |v: i32| {
        let e = f64::from(r) - f64::from(v);
        e * e + RATE_WEIGHT * bank.bits(index, v)
    };
    let nearer = n - n.signum();
    let (at_n, at_nearer) = (cost(n), cost(nearer));
    if n != 0 && at_nearer < at_n {
        (nearer, at_nearer)
    } else {
        (n, at_n)
    }
}

/// A frame's residual: per block, its three colour-rotated planes of 8×8 samples.
type Residual = Vec<[[f32; 64]; 3]>;

/// The table byte of every group for the values coded in it; `None` for a group with none.
/// A coefficient group's byte is the index of its cheapest table in the scale bank; a flag
/// group's is the chance of a set flag in 256ths (1..=255).
fn table_indices(scheme: Scheme, symbols: &[(Group, i32)]) -> Vec<Option<u8>> {
    let mut members = vec![Vec::new(); scheme.groups()];
    for &(g, v) in symbols {
        members[usize::from(g)].push(v);
    }
    let bank = ScaleBank::get();
    members
        .iter()
        .enumerate()
        .map(|(g, m)| {
            if m.is_empty() {
                None
            } else if g >= scheme.coeff_groups() {
                let set = m.iter().filter(|&&v| v != 0).count();
                Some((256 * set / m.len()).clamp(1, 255) as u8)
            } else {
                Some(bank.cheapest_of_all(m))
            }
        })
        .collect()
}

/// The binary tables of the flag groups a frame uses, from their bytes (integers only).
fn flag_tables(
    scheme: Scheme,
    indices: &[Option<u8>],
) -> Result<Vec<Option<CategoricalTable>>, CoderError> {
    indices
        .iter()
        .enumerate()
        .map(|(g, &index)| match index {
            Some(k) if g >= scheme.coeff_groups() => {
                let k = u64::from(k.max(1));
                Ok(Some(CategoricalTable::from_counts(0, &[256 - k, k])?))
            }
            _ => Ok(None),
        })
        .collect()
}

/// The fixed transforms, all orthonormal: the colour rotation, and per block an 8×8 DCT-II, four
/// 4×4 DCT-IIs or the 8×8 Haar transform ([`Kernel`]).
struct Transform {
    /// `dct[k][n]`: basis function k at sample n.
    dct: [[f32; BLOCK]; BLOCK],
    /// The same for 4 samples.
    dct4: [[f32; 4]; 4],
    /// The orthonormal 8-point Haar basis, coarse to fine ([`haar_basis`]).
    haar: [[f32; BLOCK]; BLOCK],
}

/// The quarters `(sy, sx)` of a split block.
const QUARTERS: [(usize, usize); 4] = [(0, 0), (0, 1), (1, 0), (1, 1)];

/// The orthonormal DCT-II basis of `N` samples: `[k][n]`, basis function k at sample n.
fn dct_basis<const N: usize>() -> [[f32; N]; N] {
    let mut dct = [[0f32; N]; N];
    for (k, row) in dct.iter_mut().enumerate() {
        let scale = if k == 0 {
            1.0 / N as f64
        } else {
            2.0 / N as f64
        }
        .sqrt();
        for (n, v) in row.iter_mut().enumerate() {
            let angle = std::f64::consts::PI * (2 * n + 1) as f64 * k as f64 / (2 * N) as f64;
            *v = (scale * angle.cos()) as f32;
        }
    }
    dct
}

/// The orthonormal 8-point Haar basis `[k][n]`, coarse to fine: the mean, the difference of
/// the halves, of the quarters within each half, of the pairs within each quarter.
fn haar_basis() -> [[f32; BLOCK]; BLOCK] {
    let mut haar = [[0f32; BLOCK]; BLOCK];
    haar[0] = [(1.0f64 / 8.0).sqrt() as f32; BLOCK];
    for (k, row) in haar.iter_mut().enumerate().skip(1) {
        // Row k: level `span` (the support of its plus and minus halves), position `at`.
        let level = k.ilog2();
        let span = BLOCK >> level;
        let at = (k - (1 << level)) * span;
        let value = (1.0f64 / span as f64).sqrt() as f32;
        for (n, v) in row.iter_mut().enumerate().skip(at).take(span) {
            *v = if n < at + span / 2 { value } else { -value };
        }
    }
    haar
}

/// The 2×2 Haar transform of the values at 0, 1, 8 and 9 (the quarters' DCs in a split
/// block), in place; it is its own inverse.
fn haar_dcs(c: &mut [f32; 64]) {
    let (a, b, d, e) = (c[0], c[1], c[8], c[9]);
    c[0] = 0.5 * (a + b + d + e);
    c[1] = 0.5 * (a - b + d - e);
    c[8] = 0.5 * (a + b - d - e);
    c[9] = 0.5 * (a - b - d + e);
}

/// Rows of the orthonormal colour rotation: luma, red–blue, green against red and blue.
const COLOUR: [[f32; 3]; 3] = [
    [0.577_350_3, 0.577_350_3, 0.577_350_3],
    [0.707_106_77, 0.0, -0.707_106_77],
    [0.408_248_3, -0.816_496_6, 0.408_248_3],
];

impl Transform {
    fn new() -> Self {
        Self {
            dct: dct_basis(),
            dct4: dct_basis(),
            haar: haar_basis(),
        }
    }

    /// One plane's samples to coefficients in `kernel`.
    fn forward_in(&self, kernel: Kernel, block: &[f32; 64]) -> [f32; 64] {
        match kernel {
            Kernel::Dct8 => self.forward(block),
            Kernel::Dct4 => self.forward_split(block),
            Kernel::Haar => separable_forward(&self.haar, block),
        }
    }

    /// The inverse of [`forward_in`](Self::forward_in).
    fn inverse_in(&self, kernel: Kernel, coeffs: &[f32; 64]) -> [f32; 64] {
        match kernel {
            Kernel::Dct8 => self.inverse(coeffs),
            Kernel::Dct4 => self.inverse_split(coeffs),
            Kernel::Haar => separable_inverse(&self.haar, coeffs),
        }
    }

    /// Four 4×4 DCTs of the quarters of an 8×8 plane, their DCs replaced by the 2×2 Haar
    /// transform of the four (so coefficient 0 is the 8×8 block's DC, as in
    /// [`forward`](Self::forward), and the DC predictor serves both). Coefficient `(u, v)` of
    /// quarter `(sx, sy)` goes to `[2v + sy][2u + sx]`: a coefficient's place still says
    /// roughly how fine it is, so bands and contexts serve both layouts.
    fn forward_split(&self, block: &[f32; 64]) -> [f32; 64] {
        let mut out = [0f32; 64];
        for (sy, sx) in QUARTERS {
            let mut rows = [[0f32; 4]; 4];
            for (y, row) in rows.iter_mut().enumerate() {
                let line = &block[(4 * sy + y) * 8 + 4 * sx..][..4];
                for (u, v) in row.iter_mut().enumerate() {
                    *v = (0..4).map(|x| self.dct4[u][x] * line[x]).sum();
                }
            }
            for v in 0..4 {
                for u in 0..4 {
                    out[(2 * v + sy) * 8 + 2 * u + sx] =
                        (0..4).map(|y| self.dct4[v][y] * rows[y][u]).sum();
                }
            }
        }
        haar_dcs(&mut out);
        out
    }

    /// The inverse of [`forward_split`](Self::forward_split).
    fn inverse_split(&self, coeffs: &[f32; 64]) -> [f32; 64] {
        let mut c = *coeffs;
        haar_dcs(&mut c);
        let mut out = [0f32; 64];
        for (sy, sx) in QUARTERS {
            let at = |v: usize, u: usize| c[(2 * v + sy) * 8 + 2 * u + sx];
            let mut cols = [[0f32; 4]; 4];
            for (y, col) in cols.iter_mut().enumerate() {
                for (u, v) in col.iter_mut().enumerate() {
                    *v = (0..4).map(|k| self.dct4[k][y] * at(k, u)).sum();
                }
            }
            for y in 0..4 {
                for x in 0..4 {
                    out[(4 * sy + y) * 8 + 4 * sx + x] =
                        (0..4).map(|u| self.dct4[u][x] * cols[y][u]).sum();
                }
            }
        }
        out
    }

    /// One plane's 8×8 samples (row-major) to coefficients `[v][u]` (v vertical frequency).
    fn forward(&self, block: &[f32; 64]) -> [f32; 64] {
        separable_forward(&self.dct, block)
    }

    /// Coefficients `[v][u]` back to 8×8 samples.
    fn inverse(&self, coeffs: &[f32; 64]) -> [f32; 64] {
        separable_inverse(&self.dct, coeffs)
    }
}

/// 8×8 samples (row-major) to coefficients `[v][u]` in an orthonormal `basis` (`[k][n]`),
/// rows first.
fn separable_forward(basis: &[[f32; BLOCK]; BLOCK], block: &[f32; 64]) -> [f32; 64] {
    let mut rows = [0f32; 64];
    for y in 0..BLOCK {
        for u in 0..BLOCK {
            rows[y * 8 + u] = (0..BLOCK).map(|x| basis[u][x] * block[y * 8 + x]).sum();
        }
    }
    let mut out = [0f32; 64];
    for v in 0..BLOCK {
        for u in 0..BLOCK {
            out[v * 8 + u] = (0..BLOCK).map(|y| basis[v][y] * rows[y * 8 + u]).sum();
        }
    }
    out
}

/// The inverse of [`separable_forward`] (the basis is orthonormal: its transpose).
fn separable_inverse(basis: &[[f32; BLOCK]; BLOCK], coeffs: &[f32; 64]) -> [f32; 64] {
    let mut cols = [0f32; 64];
    for y in 0..BLOCK {
        for u in 0..BLOCK {
            cols[y * 8 + u] = (0..BLOCK).map(|v| basis[v][y] * coeffs[v * 8 + u]).sum();
        }
    }
    let mut out = [0f32; 64];
    for y in 0..BLOCK {
        for x in 0..BLOCK {
            out[y * 8 + x] = (0..BLOCK).map(|u| basis[u][x] * cols[y * 8 + u]).sum();
        }
    }
    out
}

/// Quantizes, codes and rebuilds the residual of frames of one size.
pub struct DetailLayer {
    step: f32,
    width: usize,
    height: usize,
    transform: Transform,
}

impl DetailLayer {
    /// A layer for `width`×`height` frames (multiples of [`BLOCK`]) at quantizer `step`.
    pub fn new(step: f32, width: u32, height: u32) -> Self {
        Self {
            step,
            width: width as usize,
            height: height as usize,
            transform: Transform::new(),
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

    /// `source − base`, colour-rotated: per block (raster order), its three planes' samples.
    fn residual(&self, source: &RgbFrame, base: &RgbFrame) -> Residual {
        let (bw, bh) = self.blocks();
        let mut out = Vec::with_capacity(bw * bh);
        let row = 3 * self.width;
        for by in 0..bh {
            for bx in 0..bw {
                let mut planes = [[0f32; 64]; 3];
                for y in 0..BLOCK {
                    let at = (by * BLOCK + y) * row + 3 * bx * BLOCK;
                    let (s, b) = (
                        &source.data[at..at + 3 * BLOCK],
                        &base.data[at..at + 3 * BLOCK],
                    );
                    for x in 0..BLOCK {
                        let d: [f32; 3] = std::array::from_fn(|c| {
                            f32::from(s[3 * x + c]) - f32::from(b[3 * x + c])
                        });
                        for (p, plane) in planes.iter_mut().enumerate() {
                            plane[y * 8 + x] = (0..3).map(|c| COLOUR[p][c] * d[c]).sum();
                        }
                    }
                }
                out.push(planes);
            }
        }
        out
    }

    /// A residual's coefficients in steps, unrounded, each block in its transform:
    /// block-raster order, 192 per block (plane, then `[v][u]`).
    fn ratios(&self, residual: &Residual, kernels: &[Kernel]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.coefficients());
        for (planes, &kernel) in residual.iter().zip(kernels) {
            for plane in planes {
                let coeffs = self.transform.forward_in(kernel, plane);
                out.extend(coeffs.map(|c| c / self.step));
            }
        }
        out
    }

    /// Each block's transform: the 8×8 DCT unless another costs [`KERNEL_MARGIN`] less in
    /// squared error plus [`RATE_WEIGHT`] per bit ([`block_costs`](Self::block_costs), each
    /// transform under the tables it would get were every block in it); and the residual's
    /// coefficients so transformed ([`ratios`](Self::ratios)). Encoder-only.
    fn choose_kernels(&self, residual: &Residual) -> (Vec<Kernel>, Vec<f32>) {
        let n = self.block_count();
        let all: Vec<Vec<f32>> = Kernel::ALL
            .iter()
            .map(|&k| self.ratios(residual, &vec![k; n]))
            .collect();
        let costs: Vec<Vec<f64>> = all.iter().map(|r| self.block_costs(r)).collect();
        let mut ratios = Vec::with_capacity(self.coefficients());
        let kernels = (0..n)
            .map(|b| {
                let (mut best, mut cost) = (0, costs[0][b] - KERNEL_MARGIN);
                for (k, kernel_costs) in costs.iter().enumerate().skip(1) {
                    if kernel_costs[b] < cost {
                        (best, cost) = (k, kernel_costs[b]);
                    }
                }
                ratios.extend_from_slice(&all[best][b * BLOCK_COEFFS..][..BLOCK_COEFFS]);
                Kernel::ALL[best]
            })
            .collect();
        (kernels, ratios)
    }

    /// Plain rounding of `ratios`, each value's table group and the table bytes the frame
    /// would get coded so: what the encoder's rounding choices price bits with.
    fn plain_rounding(&self, ratios: &[f32]) -> (Vec<i32>, Vec<Group>, Vec<Option<u8>>) {
        let nearest: Vec<i32> = ratios.iter().map(|&r| round_element(r)).collect();
        let groups = self.groups_of(&nearest);
        let indices = table_indices(WRITTEN, &self.symbols(WRITTEN, &nearest, None));
        (nearest, groups, indices)
    }

    /// Per block, the squared error plus [`RATE_WEIGHT`] per bit of rounding its
    /// coefficients as [`round_rd`](Self::round_rd) does (each plane left out where that
    /// costs less), under the tables plain rounding of the whole frame gets.
    fn block_costs(&self, ratios: &[f32]) -> Vec<f64> {
        let (nearest, groups, indices) = self.plain_rounding(ratios);
        let plane_cost = |at: usize| {
            let mut coded = 0.0;
            let mut dropped = 0.0;
            for i in at..at + 64 {
                let r = f64::from(ratios[i]);
                dropped += r * r;
                coded += match indices[usize::from(groups[i])] {
                    Some(index) => rd_rounding(ratios[i], nearest[i], index).1,
                    None => (r - f64::from(nearest[i])).powi(2),
                };
            }
            f64::min(coded, dropped)
        };
        (0..self.block_count())
            .map(|b| (0..3).map(|p| plane_cost(b * BLOCK_COEFFS + p * 64)).sum())
            .collect()
    }

    /// Rounds coefficients (in steps) to the integers coded: each to nearest or one step
    /// nearer zero, whichever costs less in squared error plus `RATE_WEIGHT` per bit under
    /// the tables plain rounding would get. Encoder-only: the decoder reads what is chosen.
    pub fn round_rd(&self, ratios: &[f32]) -> Vec<i32> {
        let (nearest, groups, indices) = self.plain_rounding(ratios);
        let mut q: Vec<i32> = ratios
            .iter()
            .zip(&nearest)
            .zip(&groups)
            .map(|((&r, &n), &g)| {
                if n == 0 {
                    return 0;
                }
                // A coefficient of a block plain rounding leaves all zero is zero already.
                let Some(index) = indices[usize::from(g)] else {
                    return n;
                };
                rd_rounding(r, n, index).0
            })
            .collect();
        self.truncate_planes(ratios, &mut q, &groups, &indices);
        q
    }

    /// Ends each block plane after the band where its squared error plus [`RATE_WEIGHT`] per
    /// bit is least, or zeroes it: rounding coefficient by coefficient cannot see the plane's
    /// flag, the band-end flags, nor the zeros coded beside a lone small value in a late band.
    /// Bits are those of the tables plain rounding gets; the flags' from their bytes.
    fn truncate_planes(
        &self,
        ratios: &[f32],
        q: &mut [i32],
        groups: &[Group],
        indices: &[Option<u8>],
    ) {
        let bank = ScaleBank::get();
        let mut context = Context::new(WRITTEN, self.blocks());
        let flag_bits = |g: Group, set: bool| {
            let k = f64::from(indices[usize::from(g)].unwrap_or(128).max(1));
            let p = if set { k / 256.0 } else { 1.0 - k / 256.0 };
            -p.max(1.0 / 256.0).log2()
        };
        let order = BandOrder::get();
        for block in 0..q.len() / BLOCK_COEFFS {
            for p in 0..3 {
                let at = block * BLOCK_COEFFS + p * 64;
                let plane = &q[at..at + 64];
                let Some(last) = last_band(plane) else {
                    continue;
                };
                // Cost (squared error bought back, negated, plus RATE_WEIGHT per bit) of
                // coding the plane up to and including each band; the plane's flag first.
                let g = context.flag_group(block, p);
                let zeroed = RATE_WEIGHT * flag_bits(g, false);
                let mut running = RATE_WEIGHT * flag_bits(g, true);
                let (mut best, mut best_cost) = (None, zeroed);
                for band in 0..=last {
                    for &i in order.band(band) {
                        let i = usize::from(i);
                        let (r, v) = (f64::from(ratios[at + i]), plane[i]);
                        running -= r * r - (r - f64::from(v)).powi(2);
                        if let Some(index) = indices[usize::from(groups[at + i])] {
                            running += RATE_WEIGHT * bank.bits(index, v);
                        }
                    }
                    let mut cost = running;
                    if band + 1 < BANDS {
                        let end = context.end_group(block, p, band);
                        cost += RATE_WEIGHT * flag_bits(end, false);
                        running += RATE_WEIGHT * flag_bits(end, true);
                    }
                    if cost < best_cost {
                        (best, best_cost) = (Some(band), cost);
                    }
                }
                match best {
                    None => q[at..at + 64].fill(0),
                    Some(end) => {
                        for band in end + 1..=last {
                            for &i in order.band(band) {
                                q[at + usize::from(i)] = 0;
                            }
                        }
                    }
                }
            }
            context.done(block, &q[block * BLOCK_COEFFS..][..BLOCK_COEFFS]);
        }
    }

    /// The table group of every coefficient (coded or not) in the scheme written, from the
    /// coefficients before it.
    fn groups_of(&self, q: &[i32]) -> Vec<Group> {
        let mut groups = Vec::with_capacity(q.len());
        let mut context = Context::new(WRITTEN, self.blocks());
        for (block, coeffs) in q.chunks_exact(BLOCK_COEFFS).enumerate() {
            for p in 0..3 {
                for i in 0..64 {
                    groups.push(context.group(block, p, i, q));
                }
            }
            context.done(block, coeffs);
        }
        groups
    }

    /// What is coded for `q` in `scheme`, in order, each value with its table group: per
    /// block and plane, a flag (1 if any coefficient is nonzero), then if it is set the
    /// coefficients ([`Scheme`]). The groups depend only on what comes before, so the decoder
    /// finds the same ones.
    ///
    /// `kernels`, where given, are the blocks' transforms, each said after the block's planes
    /// if one of them is set ([`Scheme::Switched`], intra layers).
    fn symbols(&self, scheme: Scheme, q: &[i32], kernels: Option<&[Kernel]>) -> Vec<(Group, i32)> {
        let order = BandOrder::get();
        let mut symbols = Vec::new();
        let mut context = Context::new(scheme, self.blocks());
        for (block, coeffs) in q.chunks_exact(BLOCK_COEFFS).enumerate() {
            for (p, plane) in coeffs.chunks_exact(64).enumerate() {
                let set = plane.iter().any(|&v| v != 0);
                symbols.push((context.flag_group(block, p), i32::from(set)));
                if !set {
                    continue;
                }
                match scheme {
                    Scheme::Full => {
                        for (i, &v) in plane.iter().enumerate() {
                            symbols.push((context.group(block, p, i, q), v));
                        }
                    }
                    Scheme::Banded | Scheme::Switched => {
                        let last = last_band(plane).expect("a set plane");
                        for band in 0..=last {
                            for &i in order.band(band) {
                                let i = usize::from(i);
                                symbols.push((context.group(block, p, i, q), plane[i]));
                            }
                            if band + 1 < BANDS {
                                let more = i32::from(band < last);
                                symbols.push((context.end_group(block, p, band), more));
                            }
                        }
                    }
                }
            }
            if let Some(kernels) = kernels.filter(|_| coeffs.iter().any(|&v| v != 0)) {
                context.say_kernel(block, kernels[block], &mut symbols);
            }
            context.done(block, coeffs);
        }
        symbols
    }

    /// Entropy-codes quantized coefficients in `scheme`: the mask of the groups used, one
    /// table index per group used, then the ANS words.
    fn code(
        &self,
        scheme: Scheme,
        q: &[i32],
        kernels: Option<&[Kernel]>,
    ) -> Result<Vec<u8>, CoderError> {
        let bank = ScaleBank::get();
        let symbols = self.symbols(scheme, q, kernels);
        let indices = table_indices(scheme, &symbols);
        let mut payload = vec![0u8; scheme.mask_bytes()];
        for (g, index) in indices.iter().enumerate() {
            if let Some(index) = index {
                payload[g / 8] |= 1 << (g % 8);
                payload.push(*index);
            }
        }
        let flags = flag_tables(scheme, &indices)?;
        let mut items = Vec::with_capacity(symbols.len());
        for &(g, v) in &symbols {
            match &flags[usize::from(g)] {
                Some(table) => items.push((table, v)),
                None => {
                    let index = indices[usize::from(g)].expect("every group coded has a table");
                    bank.push_symbols(index, v, &mut items);
                }
            }
        }
        entropy::write_words(&mut payload, &entropy::encode(items.into_iter())?);
        Ok(payload)
    }

    /// Parses what [`code`](Self::code) wrote in `scheme`; the groups follow as coefficients
    /// arrive. With `read_kernels` the blocks' transforms are read too (else, and for a block
    /// with no nonzero plane, a block is in the 8×8 DCT).
    fn parse(
        &self,
        scheme: Scheme,
        payload: &[u8],
        end: StreamEnd,
        read_kernels: bool,
    ) -> Result<(Vec<i32>, Vec<Kernel>), CoderError> {
        let corrupt = |what: &str| CoderError::Payload(format!("detail layer: {what}"));
        let (groups, mask_bytes) = (scheme.groups(), scheme.mask_bytes());
        if payload.len() < mask_bytes {
            return Err(corrupt("no group mask"));
        }
        let (mask, rest) = payload.split_at(mask_bytes);
        let used: Vec<bool> = (0..groups)
            .map(|g| mask[g / 8] >> (g % 8) & 1 == 1)
            .collect();
        if groups % 8 != 0 && mask[mask_bytes - 1] >> (groups % 8) != 0 {
            return Err(corrupt("mask bits past the last group"));
        }
        let count = used.iter().filter(|&&u| u).count();
        if rest.len() < count {
            return Err(corrupt("table bytes missing"));
        }
        let (index_bytes, words) = rest.split_at(count);
        let mut indices = vec![None; groups];
        let mut next = index_bytes.iter();
        for (g, slot) in indices.iter_mut().enumerate().filter(|&(g, _)| used[g]) {
            let byte = *next.next().expect("counted above");
            *slot = Some(if g < scheme.coeff_groups() {
                entropy::check_table_index(byte)?
            } else {
                byte
            });
        }
        let table =
            |g: Group| indices[usize::from(g)].ok_or_else(|| corrupt("a group not in the mask"));
        let flags = flag_tables(scheme, &indices)?;
        let flag = |g: Group| -> Result<&CategoricalTable, CoderError> {
            table(g)?;
            Ok(flags[usize::from(g)].as_ref().expect("a flag group"))
        };
        let bank = ScaleBank::get();
        let order = BandOrder::get();
        let mut decoder = SymbolDecoder::new(words, end)?;
        let mut q = vec![0i32; self.coefficients()];
        let mut context = Context::new(scheme, self.blocks());
        for block in 0..q.len() / BLOCK_COEFFS {
            for p in 0..3 {
                if decoder.decode(flag(context.flag_group(block, p))?) == 0 {
                    continue;
                }
                decoder.check()?;
                let at = block * BLOCK_COEFFS + p * 64;
                match scheme {
                    Scheme::Full => {
                        for i in 0..64 {
                            let group = context.group(block, p, i, &q);
                            q[at + i] = bank.decode(table(group)?, &mut decoder)?;
                        }
                    }
                    Scheme::Banded | Scheme::Switched => {
                        for band in 0..BANDS {
                            for &i in order.band(band) {
                                let i = usize::from(i);
                                let group = context.group(block, p, i, &q);
                                q[at + i] = bank.decode(table(group)?, &mut decoder)?;
                            }
                            if band + 1 < BANDS {
                                let end = flag(context.end_group(block, p, band))?;
                                if decoder.decode(end) == 0 {
                                    break;
                                }
                                decoder.check()?;
                            }
                        }
                    }
                }
            }
            let coeffs = &q[block * BLOCK_COEFFS..][..BLOCK_COEFFS];
            if read_kernels && coeffs.iter().any(|&v| v != 0) {
                let (other, haar) = context.kernel_groups(block);
                let mut kernel = Kernel::Dct8;
                if decoder.decode(flag(other)?) == 1 {
                    decoder.check()?;
                    kernel = match decoder.decode(flag(haar)?) {
                        1 => Kernel::Haar,
                        _ => Kernel::Dct4,
                    };
                }
                decoder.check()?;
                context.kernels[block] = kernel;
            }
            context.done(block, coeffs);
        }
        decoder.finish()?;
        Ok((q, context.kernels))
    }

    /// The prediction of the DC of plane `p` of `block` from the DCs (decoded integers) of
    /// the blocks left (`l`), above (`u`) and above-left (`c`) of it: `l + u − c` clamped to
    /// between `l` and `u` (the median predictor of JPEG-LS, which follows an edge where a
    /// mean would blur it), the one of `l` and `u` there is, or 0.
    fn dc_prediction(&self, q: &[i32], block: usize, p: usize) -> i32 {
        let (bw, _) = self.blocks();
        let dc = |b: usize| i64::from(q[b * BLOCK_COEFFS + p * 64]);
        let left = (!block.is_multiple_of(bw)).then(|| dc(block - 1));
        let up = (block >= bw).then(|| dc(block - bw));
        let predicted = match (left, up) {
            (Some(l), Some(u)) => (l + u - dc(block - bw - 1)).clamp(l.min(u), l.max(u)),
            (Some(v), None) | (None, Some(v)) => v,
            (None, None) => 0,
        };
        predicted as i32
    }

    /// A frame without base layer codes each DC as its difference from
    /// [`dc_prediction`](Self::dc_prediction) (the rest of the picture's mean level is what
    /// the base would have carried).
    fn predict_dcs(&self, q: &[i32]) -> Vec<i32> {
        let mut coded = q.to_vec();
        for block in 0..q.len() / BLOCK_COEFFS {
            for p in 0..3 {
                coded[block * BLOCK_COEFFS + p * 64] -= self.dc_prediction(q, block, p);
            }
        }
        coded
    }

    /// Undoes [`predict_dcs`](Self::predict_dcs) in place; a sum that overflows is corrupt.
    fn unpredict_dcs(&self, q: &mut [i32]) -> Result<(), CoderError> {
        for block in 0..q.len() / BLOCK_COEFFS {
            for p in 0..3 {
                let at = block * BLOCK_COEFFS + p * 64;
                q[at] = q[at]
                    .checked_add(self.dc_prediction(q, block, p))
                    .ok_or_else(|| CoderError::Payload("detail DC overflow".into()))?;
            }
        }
        Ok(())
    }

    /// Adds the residual that quantized coefficients describe to `base`.
    /// `kernels` are the blocks' transforms.
    fn add_to(&self, base: &mut RgbFrame, q: &[i32], kernels: &[Kernel]) {
        let (bw, _) = self.blocks();
        let row = 3 * self.width;
        for ((block, coeffs), &kernel) in q.chunks_exact(BLOCK_COEFFS).enumerate().zip(kernels) {
            if coeffs.iter().all(|&v| v == 0) {
                continue;
            }
            let (bx, by) = (block % bw, block / bw);
            // Most planes of a block are zero (their flag unset): no transform for them.
            let planes: [[f32; 64]; 3] = std::array::from_fn(|p| {
                let plane = &coeffs[p * 64..][..64];
                if plane.iter().all(|&v| v == 0) {
                    return [0.0; 64];
                }
                let c: [f32; 64] = std::array::from_fn(|i| plane[i] as f32 * self.step);
                self.transform.inverse_in(kernel, &c)
            });
            for y in 0..BLOCK {
                let at = (by * BLOCK + y) * row + 3 * bx * BLOCK;
                let out = &mut base.data[at..at + 3 * BLOCK];
                for x in 0..BLOCK {
                    let i = y * 8 + x;
                    for c in 0..3 {
                        // The rotation is orthonormal: its inverse is its transpose.
                        let d: f32 = (0..3).map(|p| COLOUR[p][c] * planes[p][i]).sum();
                        let v = f32::from(out[3 * x + c]) + d;
                        out[3 * x + c] = (v.clamp(0.0, 255.0) + 0.5) as u8;
                    }
                }
            }
        }
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
    stream_end: StreamEnd,
}

/// A frame's detail layer as decoded: its coefficients and its blocks' transforms.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DetailFrame {
    q: Vec<i32>,
    kernels: Vec<Kernel>,
}

/// A detail layer the encoder made: its bytes (mode first), what the decoder will have, and
/// the squared error (in steps) it leaves.
struct CodedLayer {
    payload: Vec<u8>,
    frame: DetailFrame,
    error: f64,
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
            stream_end: StreamEnd::Sealed,
        }
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

    /// The detail layer of a frame's `residual`; `with_base` says whether the frame has a
    /// base layer (without, intra coefficients' DCs are predicted). A predicted frame's layer
    /// is the change from the previous frame's where that is shorter.
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
        let (mut kernels, ratios) = layer.choose_kernels(residual);
        let q = layer.round_rd(&ratios);
        // A block with nothing coded says nothing of its transform: the decoder takes it as
        // the 8×8 DCT, and so must the contexts here.
        for (kernel, coeffs) in kernels.iter_mut().zip(q.chunks_exact(BLOCK_COEFFS)) {
            if coeffs.iter().all(|&v| v == 0) {
                *kernel = Kernel::Dct8;
            }
        }
        let values = if with_base {
            q.clone()
        } else {
            layer.predict_dcs(&q)
        };
        let mut best = CodedLayer {
            payload: coded(DetailMode::Intra, &values, Some(&kernels))?,
            error: squared_error(&ratios, &q),
            frame: DetailFrame { q, kernels },
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
                    frame: DetailFrame {
                        q,
                        kernels: previous.kernels.clone(),
                    },
                };
            }
        }
        Ok(best)
    }
}

impl FrameCoder for DetailedCoder {
    fn supports_prediction(&self) -> bool {
        self.base.supports_prediction()
    }

    fn encode(
        &mut self,
        frame: &RgbFrame,
        frame_type: FrameType,
    ) -> Result<EncodedFrame, CoderError> {
        check_frame_size(frame, self.layer.width as u32, self.layer.height as u32)?;
        let assemble = |base: &[u8], detail: &[u8]| {
            let mut payload = Vec::with_capacity(base.len() + detail.len() + 4);
            varint::write_u64(&mut payload, base.len() as u64);
            payload.extend_from_slice(base);
            payload.extend_from_slice(detail);
            payload
        };
        let grey = || grey(self.layer.width, self.layer.height);
        let predicted = frame_type == FrameType::Predicted && self.previous.is_some();
        if predicted && !self.base_live {
            // A group of pictures whose intra frame has no base layer goes on without.
            let residual = self.layer.residual(frame, &grey());
            let detail = self.encode_detail(&residual, FrameType::Predicted, false)?;
            self.previous = Some(detail.frame);
            return Ok(EncodedFrame {
                frame_type: FrameType::Predicted,
                payload: assemble(&[], &detail.payload),
            });
        }
        let base = self.base.encode(frame, frame_type)?;
        let rebuilt = self.mirror.decode(base.frame_type, &base.payload)?;
        let residual = self.layer.residual(frame, &rebuilt);
        let detail = self.encode_detail(&residual, base.frame_type, true)?;
        let payload = assemble(&base.payload, &detail.payload);
        if base.frame_type == FrameType::Intra {
            // Where the base does not help (synthetic pictures, text, fine steps), the detail
            // layer alone costs less: the encoder tries both.
            let residual = self.layer.residual(frame, &grey());
            let alone = self.encode_detail(&residual, FrameType::Intra, false)?;
            let payload_alone = assemble(&[], &alone.payload);
            if frame_cost(&alone, payload_alone.len()) < frame_cost(&detail, payload.len()) {
                self.previous = Some(alone.frame);
                self.base_live = false;
                return Ok(EncodedFrame {
                    frame_type: FrameType::Intra,
                    payload: payload_alone,
                });
            }
        }
        self.previous = Some(detail.frame);
        self.base_live = true;
        Ok(EncodedFrame {
            frame_type: base.frame_type,
            payload,
        })
    }

    fn parse(&mut self, frame_type: FrameType, payload: &[u8]) -> Result<LatentFrame, CoderError> {
        let (base, detail) = Self::split(payload)?;
        let (&mode, detail) = detail
            .split_first()
            .ok_or_else(|| CoderError::Payload("no detail layer".into()))?;
        let bad_mode =
            || CoderError::Payload(format!("detail mode {mode} in a {frame_type:?} frame"));
        let (kind, scheme) = parse_mode(mode).ok_or_else(bad_mode)?;
        if kind == DetailMode::Change && frame_type != FrameType::Predicted {
            return Err(bad_mode());
        }
        let with_base = !base.is_empty();
        if with_base && frame_type == FrameType::Predicted && !self.base_live {
            return Err(CoderError::NoReference);
        }
        let mut latent = if with_base {
            self.base.parse(frame_type, base)?
        } else {
            LatentFrame::plain(Vec::new())
        };
        let read_kernels = kind == DetailMode::Intra && scheme == Scheme::Switched;
        let (mut values, kernels) =
            self.layer
                .parse(scheme, detail, self.stream_end, read_kernels)?;
        if !with_base && kind == DetailMode::Intra {
            self.layer.unpredict_dcs(&mut values)?;
        }
        let frame = match kind {
            DetailMode::Intra => DetailFrame { q: values, kernels },
            DetailMode::Change => {
                // A layer of changes keeps the previous frame's transforms.
                let previous = self.previous.as_ref().ok_or(CoderError::NoReference)?;
                DetailFrame {
                    q: super::add_changes(&previous.q, &values, "detail")?,
                    kernels: previous.kernels.clone(),
                }
            }
        };
        // The latent carries the coefficients, then each block's transform (`Kernel::index`).
        latent.values.extend_from_slice(&frame.q);
        latent
            .values
            .extend(frame.kernels.iter().map(|k| k.index()));
        self.previous = Some(frame);
        self.base_live = with_base;
        Ok(latent)
    }

    fn synthesize(&self, latent: &LatentFrame) -> RgbFrame {
        let (coefficients, blocks) = (self.layer.coefficients(), self.layer.block_count());
        let n = coefficients + blocks;
        assert!(latent.values.len() >= n, "latent from another coder");
        let (base, detail) = latent.values.split_at(latent.values.len() - n);
        let (detail, kernels) = detail.split_at(coefficients);
        let kernels: Vec<Kernel> = kernels
            .iter()
            .map(|&i| Kernel::ALL[(i as usize).min(2)])
            .collect();
        let mut frame = if base.is_empty() {
            grey(self.layer.width, self.layer.height)
        } else {
            self.base.synthesize(&LatentFrame {
                values: base.to_vec(),
                scale: latent.scale,
            })
        };
        self.layer.add_to(&mut frame, detail, &kernels);
        frame
    }

    fn read_streams_as(&mut self, end: StreamEnd) {
        self.base.read_streams_as(end);
        self.mirror.read_streams_as(end);
        self.stream_end = end;
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
            let parsed = layer.parse(scheme, &payload, StreamEnd::Sealed, false);
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
        let mut enc = pixel_base(w, h, 4.0);
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
            .parse(Scheme::Switched, &payload, StreamEnd::Sealed, true)
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
            assert!(
                kernels.iter().any(|&k| k != Kernel::Dct8),
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
