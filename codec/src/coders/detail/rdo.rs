//! Rate–distortion choices of the encoder: rounding, block costs, each block's transform, and
//! where each plane ends.

use super::intra::Direction;
use super::motion::{self, BlockMode};
use super::*;

/// How [`DetailLayer::round_rd`] rounds a coefficient `r` (in steps) whose nearest integer is
/// `n`, coded under bank table `index`: to `n` or one step nearer zero, whichever costs less in
/// squared error plus [`RATE_WEIGHT`] per bit; with that cost.
pub(super) fn rd_rounding(r: f32, n: i32, index: u8) -> (i32, f64) {
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

impl DetailLayer {
    /// A residual's coefficients in steps, unrounded, each block in its transform:
    /// block-raster order, 192 per block (plane, then `[v][u]`).
    pub(super) fn ratios(&self, residual: &Residual, kernels: &[Kernel]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.coefficients());
        for (planes, &kernel) in residual.iter().zip(kernels) {
            for plane in planes {
                let coeffs = self.transform.forward_in(kernel, plane);
                out.extend(coeffs.map(|c| c / self.step));
            }
        }
        out
    }

    /// A residual quantized for coding: the rounded coefficients, each block's transform and
    /// the unrounded coefficients (for the error). A block with nothing coded says nothing of
    /// its transform: the decoder takes it as the 8×8 DCT, and so must the contexts here.
    pub(super) fn quantize(&self, residual: &Residual) -> (Vec<i32>, Vec<Kernel>, Vec<f32>) {
        let (mut kernels, ratios) = self.choose_kernels(residual);
        let q = self.round_rd(&ratios);
        for (kernel, coeffs) in kernels.iter_mut().zip(q.chunks_exact(BLOCK_COEFFS)) {
            if coeffs.iter().all(|&v| v == 0) {
                *kernel = Kernel::Dct8;
            }
        }
        (q, kernels, ratios)
    }

    /// Each block's transform: the 8×8 DCT unless another costs [`KERNEL_MARGIN`] less in
    /// squared error plus [`RATE_WEIGHT`] per bit ([`block_costs`](Self::block_costs), each
    /// transform under the tables it would get were every block in it); and the residual's
    /// coefficients so transformed ([`ratios`](Self::ratios)). Encoder-only.
    pub(super) fn choose_kernels(&self, residual: &Residual) -> (Vec<Kernel>, Vec<f32>) {
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

    /// Each 16×16 block's mode for `frame` predicted by `moved` (its motion-compensated
    /// picture) in this layer (a moved frame's): the one whose residual costs least, squared
    /// error plus [`RATE_WEIGHT`] per bit as [`block_costs`](Self::block_costs) rounds it in
    /// 8×8 DCTs, plus its flags' estimated bits. With `intra`, a block may also be predicted
    /// from its own frame, each cell in the direction that costs least from the pixels beside
    /// it as the decoder would rebuild them were no block intra (the decoder's own, known
    /// only as the layer is coded, come after: `code_intra_blocks`). Encoder-only.
    pub(super) fn choose_modes(
        &self,
        frame: &RgbFrame,
        moved: &RgbFrame,
        intra: bool,
    ) -> Vec<BlockMode> {
        let grid = motion::MotionGrid::new(self.width, self.height);
        let blocks = grid.blocks().0 * grid.blocks().1;
        let kernels = vec![Kernel::Dct8; self.block_count()];
        let cell_costs = |picture: &RgbFrame| {
            self.block_costs(&self.ratios(&self.residual(frame, picture), &kernels))
        };
        let mut best = vec![(f64::INFINITY, BlockMode::Moved); blocks];
        for mode in BlockMode::FROM_MOVED {
            let mut picture = moved.clone();
            motion::apply_modes(&mut picture, &vec![mode; blocks]);
            let mut costs = vec![RATE_WEIGHT * motion::mode_bits(mode); blocks];
            // The layer's blocks are the motion grid's cells.
            for (cell, cost) in cell_costs(&picture).into_iter().enumerate() {
                costs[motion::block_of_cell(grid, cell)] += cost;
            }
            for (slot, cost) in best.iter_mut().zip(costs) {
                if cost < slot.0 {
                    *slot = (cost, mode);
                }
            }
        }
        if intra {
            // What the decoder would rebuild were no block intra: the pixels an intra cell
            // would be predicted from, but where its neighbours are intra too.
            let mut rebuilt = moved.clone();
            let modes: Vec<BlockMode> = best.iter().map(|&(_, mode)| mode).collect();
            motion::apply_modes(&mut rebuilt, &modes);
            let (q, kernels, _) = self.quantize(&self.residual(frame, &rebuilt));
            self.add_to(&mut rebuilt, &q, &kernels);
            let mut cheapest = vec![(f64::INFINITY, Direction::Dc); grid.cells()];
            for d in Direction::ALL {
                let mut picture = moved.clone();
                self.predict_open_loop(&rebuilt, &mut picture, &vec![Some(d); grid.cells()]);
                for (slot, cost) in cheapest.iter_mut().zip(cell_costs(&picture)) {
                    if cost < slot.0 {
                        *slot = (cost, d);
                    }
                }
            }
            let bcols = grid.blocks().0;
            for (b, slot) in best.iter_mut().enumerate() {
                let (cells, n) = grid.block_cells(b % bcols, b / bcols);
                let mut directions = [Direction::Dc; 4];
                let mut cost = 0.0;
                for (&(c, r), d) in cells[..n].iter().zip(&mut directions) {
                    let (cell_cost, direction) = cheapest[r * grid.cols + c];
                    cost += cell_cost;
                    *d = direction;
                }
                let mode = BlockMode::Intra(directions);
                cost += RATE_WEIGHT * motion::mode_bits(mode);
                if cost < slot.0 {
                    *slot = (cost, mode);
                }
            }
        }
        best.into_iter().map(|(_, mode)| mode).collect()
    }

    /// Plain rounding of `ratios`, each value's table group and the table bytes the frame
    /// would get coded so: what the encoder's rounding choices price bits with.
    pub(super) fn plain_rounding(&self, ratios: &[f32]) -> (Vec<i32>, Vec<Group>, Vec<Option<u8>>) {
        let nearest: Vec<i32> = ratios.iter().map(|&r| round_element(r)).collect();
        let groups = self.groups_of(&nearest);
        let indices = table_indices(WRITTEN, &self.symbols(WRITTEN, &nearest, None));
        (nearest, groups, indices)
    }

    /// Per block, the squared error plus [`RATE_WEIGHT`] per bit of rounding its
    /// coefficients as [`round_rd`](Self::round_rd) does (each plane left out where that
    /// costs less), under the tables plain rounding of the whole frame gets.
    pub(super) fn block_costs(&self, ratios: &[f32]) -> Vec<f64> {
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
    pub(super) fn truncate_planes(
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
}
