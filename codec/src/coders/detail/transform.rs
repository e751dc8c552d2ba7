//! The fixed orthonormal transforms: the colour rotation, and per 8×8 block the 8×8 DCT, four
//! 4×4 DCTs or the 8×8 Haar transform; a frame's residual into blocks and back.

use super::{DetailLayer, Residual, BLOCK, BLOCK_COEFFS};
use crate::RgbFrame;

/// The transform of a block's three planes. Coefficient 0 is the block's DC in each, so the DC
/// predictor serves all three, and a coefficient's place says roughly how fine it is, so bands
/// and contexts do too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kernel {
    /// One 8×8 DCT: smooth and textured pictures.
    Dct8,
    /// Four 4×4 DCTs ([`Transform::forward_split`]): detail that changes within the block.
    Dct4,
    /// The 8×8 Haar transform: sharp edges on flat ground (text, drawn interfaces), where the
    /// DCT's long basis functions ring.
    Haar,
}

impl Kernel {
    pub(super) const ALL: [Kernel; 3] = [Kernel::Dct8, Kernel::Dct4, Kernel::Haar];

    /// Its number in a decoded latent.
    pub(super) fn index(self) -> i32 {
        match self {
            Kernel::Dct8 => 0,
            Kernel::Dct4 => 1,
            Kernel::Haar => 2,
        }
    }
}

/// The fixed transforms, all orthonormal: the colour rotation, and per block an 8×8 DCT-II, four
/// 4×4 DCT-IIs or the 8×8 Haar transform ([`Kernel`]).
pub(super) struct Transform {
    /// `dct[k][n]`: basis function k at sample n.
    pub(super) dct: [[f32; BLOCK]; BLOCK],
    /// The same for 4 samples.
    dct4: [[f32; 4]; 4],
    /// The orthonormal 8-point Haar basis, coarse to fine ([`haar_basis`]).
    pub(super) haar: [[f32; BLOCK]; BLOCK],
}

/// The quarters `(sy, sx)` of a split block.
pub(super) const QUARTERS: [(usize, usize); 4] = [(0, 0), (0, 1), (1, 0), (1, 1)];

/// The orthonormal DCT-II basis of `N` samples: `[k][n]`, basis function k at sample n.
pub(super) fn dct_basis<const N: usize>() -> [[f32; N]; N] {
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
pub(super) fn haar_basis() -> [[f32; BLOCK]; BLOCK] {
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
pub(super) fn haar_dcs(c: &mut [f32; 64]) {
    let (a, b, d, e) = (c[0], c[1], c[8], c[9]);
    c[0] = 0.5 * (a + b + d + e);
    c[1] = 0.5 * (a - b + d - e);
    c[8] = 0.5 * (a + b - d - e);
    c[9] = 0.5 * (a - b - d + e);
}

/// Rows of the orthonormal colour rotation: luma, red–blue, green against red and blue.
pub(super) const COLOUR: [[f32; 3]; 3] = [
    [0.577_350_3, 0.577_350_3, 0.577_350_3],
    [0.707_106_77, 0.0, -0.707_106_77],
    [0.408_248_3, -0.816_496_6, 0.408_248_3],
];

impl Transform {
    pub(super) fn new() -> Self {
        Self {
            dct: dct_basis(),
            dct4: dct_basis(),
            haar: haar_basis(),
        }
    }

    /// One plane's samples to coefficients in `kernel`.
    pub(super) fn forward_in(&self, kernel: Kernel, block: &[f32; 64]) -> [f32; 64] {
        match kernel {
            Kernel::Dct8 => self.forward(block),
            Kernel::Dct4 => self.forward_split(block),
            Kernel::Haar => separable_forward(&self.haar, block),
        }
    }

    /// The inverse of [`forward_in`](Self::forward_in).
    pub(super) fn inverse_in(&self, kernel: Kernel, coeffs: &[f32; 64]) -> [f32; 64] {
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
    pub(super) fn forward_split(&self, block: &[f32; 64]) -> [f32; 64] {
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
    pub(super) fn inverse_split(&self, coeffs: &[f32; 64]) -> [f32; 64] {
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
    pub(super) fn forward(&self, block: &[f32; 64]) -> [f32; 64] {
        separable_forward(&self.dct, block)
    }

    /// Coefficients `[v][u]` back to 8×8 samples.
    pub(super) fn inverse(&self, coeffs: &[f32; 64]) -> [f32; 64] {
        separable_inverse(&self.dct, coeffs)
    }
}

/// 8×8 samples (row-major) to coefficients `[v][u]` in an orthonormal `basis` (`[k][n]`),
/// rows first.
pub(super) fn separable_forward(basis: &[[f32; BLOCK]; BLOCK], block: &[f32; 64]) -> [f32; 64] {
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
pub(super) fn separable_inverse(basis: &[[f32; BLOCK]; BLOCK], coeffs: &[f32; 64]) -> [f32; 64] {
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

impl DetailLayer {
    /// `source − base`, colour-rotated: per block (raster order), its three planes' samples.
    pub(super) fn residual(&self, source: &RgbFrame, base: &RgbFrame) -> Residual {
        (0..self.block_count())
            .map(|block| self.block_residual(source, base, block))
            .collect()
    }
}

impl DetailLayer {
    /// Adds the residual that quantized coefficients describe to `base`.
    /// `kernels` are the blocks' transforms.
    pub(super) fn add_to(&self, base: &mut RgbFrame, q: &[i32], kernels: &[Kernel]) {
        for ((block, coeffs), &kernel) in q.chunks_exact(BLOCK_COEFFS).enumerate().zip(kernels) {
            self.add_block(base, block, coeffs, kernel);
        }
    }

    /// Adds to `base` the residual of block `block` (raster order) that its quantized
    /// coefficients `coeffs` describe in transform `kernel`.
    pub(super) fn add_block(
        &self,
        base: &mut RgbFrame,
        block: usize,
        coeffs: &[i32],
        kernel: Kernel,
    ) {
        if coeffs.iter().all(|&v| v == 0) {
            return;
        }
        let row = 3 * self.width;
        let (x0, y0) = self.origin(block);
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
            let at = (y0 + y) * row + 3 * x0;
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

    /// The top-left pixel of block `block` (raster order).
    pub(super) fn origin(&self, block: usize) -> (usize, usize) {
        let bw = self.width / BLOCK;
        ((block % bw) * BLOCK, (block / bw) * BLOCK)
    }

    /// Block `block`'s (raster order) `source − base`, colour-rotated: its three planes.
    pub(super) fn block_residual(
        &self,
        source: &RgbFrame,
        base: &RgbFrame,
        block: usize,
    ) -> [[f32; 64]; 3] {
        let (x0, y0) = self.origin(block);
        let row = 3 * self.width;
        let mut planes = [[0f32; 64]; 3];
        for y in 0..BLOCK {
            let at = (y0 + y) * row + 3 * x0;
            let (s, b) = (
                &source.data[at..at + 3 * BLOCK],
                &base.data[at..at + 3 * BLOCK],
            );
            for x in 0..BLOCK {
                let d: [f32; 3] =
                    std::array::from_fn(|c| f32::from(s[3 * x + c]) - f32::from(b[3 * x + c]));
                for (p, plane) in planes.iter_mut().enumerate() {
                    plane[y * 8 + x] = (0..3).map(|c| COLOUR[p][c] * d[c]).sum();
                }
            }
        }
        planes
    }
}

/// The fast kernels above against a reference written from the definitions alone: each
/// transform as a 64×64 matrix in `f64`, whose rows are the 2-D basis functions, applied by a
/// plain matrix–vector product (dav1d's checkasm does the same for its SIMD kernels).
#[cfg(test)]
mod reference {
    use super::*;

    /// DCT-II basis function `k` of `n` samples at sample `x`.
    fn dct(n: usize, k: usize, x: usize) -> f64 {
        let scale = if k == 0 { 1.0 } else { 2.0 } / n as f64;
        let angle = std::f64::consts::PI * ((2 * x + 1) * k) as f64 / (2 * n) as f64;
        scale.sqrt() * angle.cos()
    }

    /// Haar basis function `k` of 8 samples at sample `x`: the mean, then at each level the
    /// difference of the two halves of its support.
    fn haar(k: usize, x: usize) -> f64 {
        if k == 0 {
            return (1.0f64 / 8.0).sqrt();
        }
        let level = k.ilog2() as usize;
        let span = 8 >> level;
        let at = (k - (1 << level)) * span;
        if !(at..at + span).contains(&x) {
            return 0.0;
        }
        let sign = if x < at + span / 2 { 1.0 } else { -1.0 };
        sign / (span as f64).sqrt()
    }

    /// Row `[v][u]` of `kernel`'s matrix: the 2-D basis function whose coefficient lands there,
    /// over the samples `[y][x]`.
    fn basis_function(kernel: Kernel, v: usize, u: usize) -> [f64; 64] {
        let mut f = [0f64; 64];
        match kernel {
            Kernel::Dct8 | Kernel::Haar => {
                let one = |k, x| match kernel {
                    Kernel::Haar => haar(k, x),
                    _ => dct(8, k, x),
                };
                for (s, value) in f.iter_mut().enumerate() {
                    *value = one(v, s / 8) * one(u, s % 8);
                }
            }
            Kernel::Dct4 => {
                // Place [2v' + sy][2u' + sx] holds coefficient (u', v') of quarter (sx, sy);
                // the quarters' DCs (places 0, 1, 8, 9) are mixed by a 2×2 Haar transform.
                let quarter_dc = |sy: usize, sx: usize| {
                    let mut g = [0f64; 64];
                    for y in 0..4 {
                        for x in 0..4 {
                            g[(4 * sy + y) * 8 + 4 * sx + x] = dct(4, 0, y) * dct(4, 0, x);
                        }
                    }
                    g
                };
                let (vq, sy, uq, sx) = (v / 2, v % 2, u / 2, u % 2);
                if vq == 0 && uq == 0 {
                    // Haar over the quarters: place (sy, sx) is the pattern (±1 by row, column).
                    for (qy, qx) in QUARTERS {
                        let sign_y = if sy == 1 && qy == 1 { -1.0 } else { 1.0 };
                        let sign_x = if sx == 1 && qx == 1 { -1.0 } else { 1.0 };
                        let g = quarter_dc(qy, qx);
                        for (value, part) in f.iter_mut().zip(g) {
                            *value += 0.5 * sign_y * sign_x * part;
                        }
                    }
                } else {
                    for y in 0..4 {
                        for x in 0..4 {
                            f[(4 * sy + y) * 8 + 4 * sx + x] = dct(4, vq, y) * dct(4, uq, x);
                        }
                    }
                }
            }
        }
        f
    }

    fn matrix(kernel: Kernel) -> Vec<[f64; 64]> {
        (0..64)
            .map(|c| basis_function(kernel, c / 8, c % 8))
            .collect()
    }

    /// Deterministic samples in −255..255, some blocks flat, some with a sharp edge.
    fn blocks() -> Vec<[f32; 64]> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 511) as f32 - 255.0
        };
        let mut out: Vec<[f32; 64]> = (0..200).map(|_| std::array::from_fn(|_| next())).collect();
        out.push([37.0; 64]);
        out.push(std::array::from_fn(
            |i| if i % 8 < 3 { 200.0 } else { -40.0 },
        ));
        out
    }

    #[test]
    fn every_fast_kernel_matches_its_reference_forward_and_inverse() {
        let transform = Transform::new();
        for kernel in Kernel::ALL {
            let m = matrix(kernel);
            // The reference is orthonormal: its rows are unit length and orthogonal.
            for (i, a) in m.iter().enumerate() {
                for (j, b) in m.iter().enumerate() {
                    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!(
                        (dot - want).abs() < 1e-9,
                        "{kernel:?}: rows {i}, {j}: {dot}"
                    );
                }
            }
            for block in blocks() {
                let fast = transform.forward_in(kernel, &block);
                let mut worst = 0f64;
                for (c, row) in m.iter().enumerate() {
                    let want: f64 = row.iter().zip(&block).map(|(b, &x)| b * f64::from(x)).sum();
                    worst = worst.max((want - f64::from(fast[c])).abs());
                }
                assert!(worst < 2e-3, "{kernel:?} forward off by {worst}");
                let back = transform.inverse_in(kernel, &fast);
                for s in 0..64 {
                    let want: f64 = m
                        .iter()
                        .zip(&fast)
                        .map(|(row, &c)| row[s] * f64::from(c))
                        .sum();
                    assert!(
                        (want - f64::from(back[s])).abs() < 2e-3,
                        "{kernel:?} inverse off at {s}"
                    );
                    assert!((f64::from(back[s]) - f64::from(block[s])).abs() < 2e-3);
                }
            }
        }
    }
}
