//! DC prediction of frames without base layer: each block's DC from its neighbours'.

use super::*;

impl DetailLayer {
    /// The prediction of the DC of plane `p` of `block` from the DCs (decoded integers) of
    /// the blocks left (`l`), above (`u`) and above-left (`c`) of it: `l + u − c` clamped to
    /// between `l` and `u` (the median predictor of JPEG-LS, which follows an edge where a
    /// mean would blur it), the one of `l` and `u` there is, or 0.
    pub(super) fn dc_prediction(&self, q: &[i32], block: usize, p: usize) -> i32 {
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
    pub(super) fn predict_dcs(&self, q: &[i32]) -> Vec<i32> {
        let mut coded = q.to_vec();
        for block in 0..q.len() / BLOCK_COEFFS {
            for p in 0..3 {
                coded[block * BLOCK_COEFFS + p * 64] -= self.dc_prediction(q, block, p);
            }
        }
        coded
    }

    /// Undoes [`predict_dcs`](Self::predict_dcs) in place; a sum that overflows is corrupt.
    pub(super) fn unpredict_dcs(&self, q: &mut [i32]) -> Result<(), CoderError> {
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
}
