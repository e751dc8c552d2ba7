//! Bjøntegaard delta rate (VCEG-M33): how much more (or less) rate a codec needs than a
//! reference for the same PSNR, averaged over the PSNR range both curves cover.
//!
//! Each curve's log-rate is fitted as a cubic polynomial of PSNR (least squares); the
//! difference of the fits' integrals over the overlap gives the mean log-rate ratio.

/// BD-rate of `test` against `reference`, in percent (negative: `test` needs fewer bits).
/// Points are `(rate, psnr)`; rates must be positive. `None` when either curve has fewer
/// than 4 points or the PSNR ranges do not overlap.
pub fn bd_rate(reference: &[(f64, f64)], test: &[(f64, f64)]) -> Option<f64> {
    let fit_ref = fit_log_rate(reference)?;
    let fit_test = fit_log_rate(test)?;
    let range = |c: &[(f64, f64)]| {
        c.iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(p.1), hi.max(p.1))
            })
    };
    let (lo_r, hi_r) = range(reference);
    let (lo_t, hi_t) = range(test);
    let (lo, hi) = (lo_r.max(lo_t), hi_r.min(hi_t));
    if hi <= lo {
        return None;
    }
    let mean = |c: &[f64; 4]| (integral(c, hi) - integral(c, lo)) / (hi - lo);
    Some(((mean(&fit_test) - mean(&fit_ref)).exp() - 1.0) * 100.0)
}

/// Least-squares cubic `log(rate) = c0 + c1 p + c2 p² + c3 p³`, solved by the normal
/// equations with PSNR centred for conditioning.
fn fit_log_rate(points: &[(f64, f64)]) -> Option<[f64; 4]> {
    if points.len() < 4
        || points
            .iter()
            .any(|p| p.0.is_nan() || p.0 <= 0.0 || !p.1.is_finite())
    {
        return None;
    }
    // The cubic fit of rate over PSNR assumes PSNR rises with rate; a curve that turns back
    // (more bits, no better frames) would make the fit extrapolate nonsense.
    let mut by_rate = points.to_vec();
    by_rate.sort_by(|a, b| a.0.total_cmp(&b.0));
    if by_rate.windows(2).any(|w| w[1].1 <= w[0].1) {
        return None;
    }
    let centre = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let mut ata = nalgebra::Matrix4::<f64>::zeros();
    let mut atb = nalgebra::Vector4::<f64>::zeros();
    for &(rate, psnr) in points {
        let x = psnr - centre;
        let row = nalgebra::Vector4::new(1.0, x, x * x, x * x * x);
        ata += row * row.transpose();
        atb += row * rate.ln();
    }
    let c = ata.lu().solve(&atb)?;
    // Expand the centred polynomial back to powers of p.
    let (a, m) = ([c[0], c[1], c[2], c[3]], centre);
    Some([
        a[0] - a[1] * m + a[2] * m * m - a[3] * m * m * m,
        a[1] - 2.0 * a[2] * m + 3.0 * a[3] * m * m,
        a[2] - 3.0 * a[3] * m,
        a[3],
    ])
}

fn integral(c: &[f64; 4], p: f64) -> f64 {
    c[0] * p + c[1] * p * p / 2.0 + c[2] * p.powi(3) / 3.0 + c[3] * p.powi(4) / 4.0
}

/// Rate at a given PSNR, interpolating log-rate linearly between measured points (no
/// extrapolation).
pub fn rate_at_psnr(points: &[(f64, f64)], psnr: f64) -> Option<f64> {
    let mut sorted: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|p| p.0 > 0.0 && p.1.is_finite())
        .collect();
    sorted.sort_by(|a, b| a.1.total_cmp(&b.1));
    sorted.windows(2).find_map(|w| {
        let ((r0, p0), (r1, p1)) = (w[0], w[1]);
        if p0 <= psnr && psnr <= p1 && p1 > p0 {
            let t = (psnr - p0) / (p1 - p0);
            Some((r0.ln() + t * (r1.ln() - r0.ln())).exp())
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sample 1 of the demo in github.com/Anserw/Bjontegaard_metric (rates in kbit/s, PSNR
    /// in dB). Expected value: the VCEG-M33 cubic fit computed with numpy's `polyfit` and
    /// `polyint` on the same points: 31.3974 %.
    #[test]
    fn matches_the_published_example() {
        let anchor = [
            (686.76, 40.28),
            (309.58, 37.18),
            (157.11, 34.24),
            (85.95, 31.42),
        ];
        let test = [
            (893.34, 40.39),
            (407.8, 37.21),
            (204.93, 34.17),
            (112.75, 31.24),
        ];
        let bd = bd_rate(&anchor, &test).unwrap();
        assert!((bd - 31.39737).abs() < 1e-3, "{bd}");
        // Symmetry: the reverse comparison is the reciprocal ratio.
        let back = bd_rate(&test, &anchor).unwrap();
        assert!(
            ((1.0 + bd / 100.0) * (1.0 + back / 100.0) - 1.0).abs() < 0.02,
            "{back}"
        );
    }

    #[test]
    fn identical_and_scaled_curves() {
        let a = [
            (1.0, 30.0),
            (2.0, 33.0),
            (4.0, 36.0),
            (8.0, 39.0),
            (16.0, 42.0),
        ];
        assert!(bd_rate(&a, &a).unwrap().abs() < 1e-9);
        let half: Vec<(f64, f64)> = a.iter().map(|&(r, p)| (r / 2.0, p)).collect();
        assert!((bd_rate(&a, &half).unwrap() + 50.0).abs() < 1e-6);
        assert!(bd_rate(&a[..3], &a).is_none());
        assert!((rate_at_psnr(&a, 34.5).unwrap() - 2f64.powf(1.5)).abs() < 1e-9);
        assert!(rate_at_psnr(&a, 45.0).is_none());
    }

    #[test]
    fn a_curve_that_turns_back_has_no_bd_rate() {
        let a = [(1.0, 30.0), (2.0, 33.0), (4.0, 36.0), (8.0, 39.0)];
        // The last point costs more and is worse: the measured shape of an undertrained model.
        let flat = [(1.0, 33.0), (1.4, 34.0), (1.7, 34.3), (1.9, 34.2)];
        assert!(bd_rate(&a, &flat).is_none());
        assert!(bd_rate(&flat, &a).is_none());
    }
}
