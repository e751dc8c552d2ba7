//! What decides each coefficient's table: the coding schemes and their groups, the mode byte,
//! the band order, and the contexts counted from the blocks coded so far.

use super::transform::Kernel;
use super::{Group, BANDS, BLOCK_COEFFS, CLASSES, FLAG_GROUPS, NEIGHBOUR_CLASSES, PLANE_GROUPS};

/// How a frame's coefficients are ordered and grouped; the mode byte says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scheme {
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
    pub(super) const BANDED_SETS: usize = 1 + 2 * 2;

    /// Table groups of coefficients; the flags' follow.
    pub(super) fn coeff_groups(self) -> usize {
        match self {
            Scheme::Full => 3 * PLANE_GROUPS,
            Scheme::Banded => Self::BANDED_SETS * PLANE_GROUPS,
            Scheme::Switched => Self::BANDED_SETS * PLANE_GROUPS * 2,
        }
    }

    /// Band-end flag groups: per plane and activity class, one per band but the last.
    pub(super) fn end_groups(self) -> usize {
        match self {
            Scheme::Full => 0,
            Scheme::Banded | Scheme::Switched => 3 * CLASSES * (BANDS - 1),
        }
    }

    /// Transform flag groups: "not the 8×8 DCT" and "Haar, not 4×4 DCTs", each by how many of
    /// the blocks left and above are so.
    pub(super) fn kernel_groups(self) -> usize {
        match self {
            Scheme::Full | Scheme::Banded => 0,
            Scheme::Switched => 2 * 3,
        }
    }

    pub(super) fn groups(self) -> usize {
        self.coeff_groups() + FLAG_GROUPS + self.end_groups() + self.kernel_groups()
    }

    /// Bytes of the mask of groups a frame uses.
    pub(super) fn mask_bytes(self) -> usize {
        self.groups().div_ceil(8)
    }
}

/// What decides a coefficient's table group beside its plane and band: counts of nonzero
/// coefficients of the blocks coded so far, per plane.
pub(super) struct Context {
    pub(super) scheme: Scheme,
    pub(super) blocks_wide: usize,
    pub(super) nonzeros: Vec<[u32; 3]>,
    /// The transforms of the blocks coded so far (a block that says nothing is in the 8×8 DCT).
    pub(super) kernels: Vec<Kernel>,
}

impl Context {
    pub(super) fn new(scheme: Scheme, (blocks_wide, blocks_high): (usize, usize)) -> Self {
        Self {
            scheme,
            blocks_wide,
            nonzeros: vec![[0; 3]; blocks_wide * blocks_high],
            kernels: vec![Kernel::Dct8; blocks_wide * blocks_high],
        }
    }

    /// The blocks left of and above `block`, those of them inside the frame.
    pub(super) fn neighbours(&self, block: usize) -> impl Iterator<Item = usize> {
        let (bx, by) = (block % self.blocks_wide, block / self.blocks_wide);
        let left = (bx > 0).then(|| block - 1);
        let up = (by > 0).then(|| block - self.blocks_wide);
        left.into_iter().chain(up)
    }

    /// How many nonzero coefficients plane `p` of the blocks left of and above `block` had.
    pub(super) fn around(&self, block: usize, p: usize) -> u32 {
        self.neighbours(block).map(|b| self.nonzeros[b][p]).sum()
    }

    /// The group of coefficient `i` of plane `p` of `block`; `q` holds every earlier block
    /// and the earlier planes of this one.
    pub(super) fn group(&self, block: usize, p: usize, i: usize, q: &[i32]) -> Group {
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
    pub(super) fn end_group(&self, block: usize, p: usize, band: usize) -> Group {
        let class = activity_class(self.around(block, p));
        let base = self.scheme.coeff_groups() + FLAG_GROUPS;
        (base + (p * CLASSES + class) * (BANDS - 1) + band) as Group
    }

    /// The groups of the two flags that say `block`'s transform ([`Scheme::Switched`]):
    /// whether it is other than the 8×8 DCT, and then whether it is the Haar transform.
    pub(super) fn kernel_groups(&self, block: usize) -> (Group, Group) {
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
    pub(super) fn say_kernel(
        &mut self,
        block: usize,
        kernel: Kernel,
        symbols: &mut Vec<(Group, i32)>,
    ) {
        let (other, haar) = self.kernel_groups(block);
        symbols.push((other, i32::from(kernel != Kernel::Dct8)));
        if kernel != Kernel::Dct8 {
            symbols.push((haar, i32::from(kernel == Kernel::Haar)));
        }
        self.kernels[block] = kernel;
    }

    /// The group of the flag that says whether plane `p` of `block` has any nonzero
    /// coefficient.
    pub(super) fn flag_group(&self, block: usize, p: usize) -> Group {
        let set = self
            .neighbours(block)
            .filter(|&b| self.nonzeros[b][p] > 0)
            .count();
        (self.scheme.coeff_groups() + 3 * p + set) as Group
    }

    /// Records a block once all its coefficients are known.
    pub(super) fn done(&mut self, block: usize, coeffs: &[i32]) {
        for p in 0..3 {
            self.nonzeros[block][p] =
                coeffs[p * 64..][..64].iter().filter(|&&v| v != 0).count() as u32;
        }
    }
}

/// What a frame's detail layer codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DetailMode {
    /// The coefficients themselves.
    Intra,
    /// Their change from the previous frame's (predicted frames only).
    Change,
    /// A motion field, then the coefficients of what the previous picture moved by it misses
    /// (predicted frames without base layer only; `motion`).
    Motion,
}

/// The first payload byte of a frame's detail layer: what it codes, and how.
pub(super) fn mode_byte(mode: DetailMode, scheme: Scheme) -> u8 {
    match (scheme, mode) {
        (Scheme::Full, DetailMode::Intra) => 0,
        (Scheme::Full, DetailMode::Change) => 1,
        (Scheme::Banded, DetailMode::Intra) => 2,
        (Scheme::Banded, DetailMode::Change) => 3,
        (Scheme::Switched, DetailMode::Intra) => 4,
        (Scheme::Switched, DetailMode::Change) => 5,
        // Motion frames exist in the switched scheme only.
        (_, DetailMode::Motion) => 6,
    }
}

/// The inverse of [`mode_byte`]; `None` for any other byte.
pub(super) fn parse_mode(byte: u8) -> Option<(DetailMode, Scheme)> {
    Some(match byte {
        0 => (DetailMode::Intra, Scheme::Full),
        1 => (DetailMode::Change, Scheme::Full),
        2 => (DetailMode::Intra, Scheme::Banded),
        3 => (DetailMode::Change, Scheme::Banded),
        4 => (DetailMode::Intra, Scheme::Switched),
        5 => (DetailMode::Change, Scheme::Switched),
        6 => (DetailMode::Motion, Scheme::Switched),
        _ => return None,
    })
}

/// Coefficient indices (`v·8 + u`) band by band (row-major within a band), and where each
/// band ends in that order.
pub(super) struct BandOrder {
    pub(super) order: [u8; 64],
    pub(super) ends: [usize; BANDS],
}

impl BandOrder {
    pub(super) fn get() -> &'static BandOrder {
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
    pub(super) fn band(&self, band: usize) -> &[u8] {
        let start = if band == 0 { 0 } else { self.ends[band - 1] };
        &self.order[start..self.ends[band]]
    }
}

pub(super) fn band_group(u: usize, v: usize) -> usize {
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
pub(super) fn last_band(plane: &[i32]) -> Option<usize> {
    (0..64)
        .filter(|&i| plane[i] != 0)
        .map(|i| band_group(i % 8, i / 8))
        .max()
}

pub(super) fn activity_class(neighbour_nonzeros: u32) -> usize {
    match neighbour_nonzeros {
        0 => 0,
        1..=3 => 1,
        4..=12 => 2,
        _ => 3,
    }
}
