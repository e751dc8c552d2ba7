//! Distortion measured on 8-bit RGB frames.

use crate::RgbFrame;

/// Sum of squared differences and sample count between two equally sized frames.
pub fn squared_error(a: &RgbFrame, b: &RgbFrame) -> (u64, u64) {
    assert_eq!(
        (a.width, a.height),
        (b.width, b.height),
        "frames differ in size"
    );
    let sse = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| {
            let d = i64::from(x) - i64::from(y);
            (d * d) as u64
        })
        .sum();
    (sse, a.data.len() as u64)
}

/// PSNR in dB for a mean squared error on 8-bit samples; infinite for identical frames.
pub fn psnr_from_mse(mse: f64) -> f64 {
    if mse <= 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// RGB PSNR of one frame against its reference.
pub fn psnr(reference: &RgbFrame, decoded: &RgbFrame) -> f64 {
    let (sse, n) = squared_error(reference, decoded);
    psnr_from_mse(sse as f64 / n as f64)
}

/// Accumulates squared error over a whole clip; the clip's PSNR is computed from the mean
/// squared error over all frames (not the mean of per-frame PSNRs).
#[derive(Debug, Default, Clone, Copy)]
pub struct PsnrAccumulator {
    sse: u64,
    samples: u64,
}

impl PsnrAccumulator {
    pub fn add(&mut self, reference: &RgbFrame, decoded: &RgbFrame) {
        let (sse, n) = squared_error(reference, decoded);
        self.sse += sse;
        self.samples += n;
    }

    pub fn psnr(&self) -> f64 {
        psnr_from_mse(self.sse as f64 / self.samples.max(1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_of_known_error() {
        let a = RgbFrame::from_data(1, 1, vec![10, 10, 10]).unwrap();
        let b = RgbFrame::from_data(1, 1, vec![11, 9, 10]).unwrap();
        // MSE = 2/3.
        let expected = 10.0 * (255.0f64 * 255.0 * 1.5).log10();
        assert!((psnr(&a, &b) - expected).abs() < 1e-9);
        assert!(psnr(&a, &a).is_infinite());
    }
}
