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

/// MS-SSIM (Wang, Simoncelli & Bovik 2003) of two RGB frames: the mean over the R, G and B
/// planes. 11-tap Gaussian window (σ 1.5), no padding, 5 scales with the standard weights;
/// frames too small for 5 scales use as many as fit, with the weights renormalized.
pub fn ms_ssim(reference: &RgbFrame, decoded: &RgbFrame) -> f64 {
    assert_eq!(
        (reference.width, reference.height),
        (decoded.width, decoded.height)
    );
    let (w, h) = (reference.width as usize, reference.height as usize);
    (0..3)
        .map(|c| {
            let plane = |f: &RgbFrame| {
                f.data
                    .iter()
                    .skip(c)
                    .step_by(3)
                    .map(|&v| f32::from(v))
                    .collect::<Vec<_>>()
            };
            ms_ssim_plane(plane(reference), plane(decoded), w, h)
        })
        .sum::<f64>()
        / 3.0
}

const WINDOW: usize = 11;

fn gaussian_window() -> [f32; WINDOW] {
    let mut g = [0f32; WINDOW];
    for (i, v) in g.iter_mut().enumerate() {
        let x = i as f32 - 5.0;
        *v = (-x * x / (2.0 * 1.5 * 1.5)).exp();
    }
    let sum: f32 = g.iter().sum();
    g.map(|v| v / sum)
}

fn ms_ssim_plane(mut x: Vec<f32>, mut y: Vec<f32>, mut w: usize, mut h: usize) -> f64 {
    const WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];
    let mut scales = 0;
    while scales < 5 && (w.min(h) >> scales) >= WINDOW {
        scales += 1;
    }
    if scales == 0 {
        return if x == y { 1.0 } else { 0.0 };
    }
    let total: f64 = WEIGHTS[..scales].iter().sum();
    let mut result = 1.0;
    for (s, &weight) in WEIGHTS[..scales].iter().enumerate() {
        let (ssim, cs) = ssim_stats(&x, &y, w, h);
        let value = if s + 1 == scales { ssim } else { cs };
        result *= value.max(0.0).powf(weight / total);
        if s + 1 < scales {
            let (dx, nw, nh) = downsample(&x, w, h);
            y = downsample(&y, w, h).0;
            (x, w, h) = (dx, nw, nh);
        }
    }
    result
}

/// 2×2 average, dropping an odd last row or column.
fn downsample(p: &[f32], w: usize, h: usize) -> (Vec<f32>, usize, usize) {
    let (nw, nh) = (w / 2, h / 2);
    let mut out = Vec::with_capacity(nw * nh);
    for yy in 0..nh {
        for xx in 0..nw {
            let i = 2 * yy * w + 2 * xx;
            out.push((p[i] + p[i + 1] + p[i + w] + p[i + w + 1]) / 4.0);
        }
    }
    (out, nw, nh)
}

/// Mean SSIM and mean contrast-structure term over all valid window positions.
fn ssim_stats(x: &[f32], y: &[f32], w: usize, h: usize) -> (f64, f64) {
    let g = gaussian_window();
    let (c1, c2) = ((0.01f32 * 255.0).powi(2), (0.03f32 * 255.0).powi(2));
    let (ow, oh) = (w + 1 - WINDOW, h + 1 - WINDOW);
    // Horizontal pass of the five moments, then the vertical pass per output pixel.
    let mut rows = vec![[0f32; 5]; ow * h];
    for r in 0..h {
        for c in 0..ow {
            let mut m = [0f32; 5];
            for (k, &gk) in g.iter().enumerate() {
                let (a, b) = (x[r * w + c + k], y[r * w + c + k]);
                m[0] += gk * a;
                m[1] += gk * b;
                m[2] += gk * a * a;
                m[3] += gk * b * b;
                m[4] += gk * a * b;
            }
            rows[r * ow + c] = m;
        }
    }
    let (mut ssim_sum, mut cs_sum) = (0f64, 0f64);
    for r in 0..oh {
        for c in 0..ow {
            let mut m = [0f32; 5];
            for (k, &gk) in g.iter().enumerate() {
                let v = rows[(r + k) * ow + c];
                for j in 0..5 {
                    m[j] += gk * v[j];
                }
            }
            let (mx, my) = (m[0], m[1]);
            let (vx, vy, cov) = (m[2] - mx * mx, m[3] - my * my, m[4] - mx * my);
            let cs = (2.0 * cov + c2) / (vx + vy + c2);
            let l = (2.0 * mx * my + c1) / (mx * mx + my * my + c1);
            cs_sum += f64::from(cs);
            ssim_sum += f64::from(l * cs);
        }
    }
    let n = (ow * oh) as f64;
    (ssim_sum / n, cs_sum / n)
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

    #[test]
    fn ms_ssim_is_one_for_identical_frames_and_falls_with_noise() {
        let (w, h) = (200u32, 190u32);
        let data: Vec<u8> = (0..3 * w * h)
            .map(|i| ((i / 3 % w) * 2 + (i / 3 / w)) as u8)
            .collect();
        let a = RgbFrame::from_data(w, h, data).unwrap();
        assert!((ms_ssim(&a, &a) - 1.0).abs() < 1e-6);
        let mut noisy = a.clone();
        for (i, v) in noisy.data.iter_mut().enumerate() {
            *v = v.saturating_add(((i * 7919) % 23) as u8);
        }
        let mut noisier = a.clone();
        for (i, v) in noisier.data.iter_mut().enumerate() {
            *v = v.saturating_add(((i * 7919) % 61) as u8);
        }
        let (s1, s2) = (ms_ssim(&a, &noisy), ms_ssim(&a, &noisier));
        assert!(s1 < 1.0 && s2 < s1 && s2 > 0.0, "{s1} {s2}");
    }
}
