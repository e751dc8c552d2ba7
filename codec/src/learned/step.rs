//! One model for every rate: a latent quantizer step chosen per group of pictures.
//!
//! A model of the shallow kind is trained at one rate–distortion trade-off, and its latent is
//! coded at others by quantizing `y / step` instead of `y` (Ballé's "one quantizer step scaled
//! after training"): a larger step spends fewer bits for more distortion. The hyperprior's
//! scales are divided by the same step, so each element's table still fits it, and the
//! synthesis reads `ŷ · step`.
//!
//! The step travels as one byte at the start of each intra payload: `ln step = (index −
//! 128) / 32`, so the steps are spaced 3.2 % apart from e^−4 to e^4. The log-scale offset that
//! moves the table choice is `(index − 128) · 8` in the hyper-synthesis's fixed point (2^−8 of
//! a natural log), an integer: parsing stays exact on every machine. Predicted frames keep the
//! step of the intra frame that starts their group.

/// A latent quantizer step (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LatentStep(u8);

impl LatentStep {
    /// Step 1: the latent as the model was trained.
    pub const UNIT: LatentStep = LatentStep(128);
    /// Grid steps per unit of `ln step`: `ln step = (index − 128) / 32`.
    const PER_NAT: f64 = 32.0;

    pub const fn from_index(index: u8) -> Self {
        Self(index)
    }

    pub fn index(self) -> u8 {
        self.0
    }

    /// The grid's step nearest to `step` (clamped to the grid's ends), or `None` if `step` is
    /// not a positive number.
    pub fn nearest(step: f64) -> Option<Self> {
        if !(step.is_finite() && step > 0.0) {
            return None;
        }
        let index = (step.ln() * Self::PER_NAT + 128.0)
            .round()
            .clamp(0.0, 255.0);
        Some(Self(index as u8))
    }

    /// The step's value (for the encoder's division and the synthesis's product, never for
    /// parsing).
    pub fn value(self) -> f32 {
        ((f64::from(self.0) - 128.0) / Self::PER_NAT).exp() as f32
    }

    /// `ln step` as a multiple of 2^−8, exactly (the hyper-synthesis's fixed point).
    pub fn log_q8(self) -> i64 {
        (i64::from(self.0) - 128) * 8
    }

    /// Means from the hyper-synthesis (multiples of 2^−8 of the latent at step 1) in units
    /// of this step, each rounded to the nearest integer, by integer arithmetic alone: a
    /// mean moves which symbol an element is coded as, so every machine must find the same.
    pub fn means_in_steps(self, means_q8: impl Iterator<Item = i64>) -> Vec<i32> {
        let inverse = i128::from(self.inverse_q40());
        means_q8
            .map(|mean| {
                let rounded = (i128::from(mean) * inverse + (1 << 47)) >> 48;
                rounded.clamp(i32::MIN.into(), i32::MAX.into()) as i32
            })
            .collect()
    }

    /// `1 / step` in fixed point 2^−40: e^∓1/32 (rounded to that grid) multiplied in
    /// |index − 128| times, each product floored back to the grid.
    fn inverse_q40(self) -> i64 {
        const DOWN: u128 = 1_065_683_211_334; // 2^40 · e^(−1/32)
        const UP: u128 = 1_134_413_873_426; // 2^40 · e^(1/32)
        let k = i32::from(self.0) - 128;
        let factor = if k > 0 { DOWN } else { UP };
        let mut inverse: u128 = 1 << 40;
        for _ in 0..k.unsigned_abs() {
            // At most 2^46 · 2^41: no overflow.
            inverse = (inverse * factor) >> 40;
        }
        inverse as i64
    }
}

impl Default for LatentStep {
    fn default() -> Self {
        Self::UNIT
    }
}

impl std::fmt::Display for LatentStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3}", self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_maps_steps_and_logs_exactly() {
        assert_eq!(LatentStep::nearest(1.0), Some(LatentStep::UNIT));
        assert_eq!(LatentStep::UNIT.value(), 1.0);
        let two = LatentStep::nearest(2.0).unwrap();
        // e^(22/32) = 1.988: the nearest grid step to 2.
        assert_eq!(two.index(), 150);
        assert!((two.value() - 2.0).abs() < 0.02, "{}", two.value());
        assert_eq!(two.log_q8(), 176);
        // ln(step) · 256 and the fixed-point offset agree to the grid's rounding.
        for index in [0u8, 50, 128, 200, 255] {
            let step = LatentStep::from_index(index);
            let exact = f64::from(step.value()).ln() * 256.0;
            assert!((exact - step.log_q8() as f64).abs() < 0.01, "{index}");
        }
        assert_eq!(LatentStep::nearest(1e9).unwrap().index(), 255);
        assert_eq!(LatentStep::nearest(1e-9).unwrap().index(), 0);
        assert_eq!(LatentStep::nearest(0.0), None);
        // Means in steps: exact integers, within the grid's rounding of the float division.
        for index in [0u8, 37, 128, 150, 255] {
            let step = LatentStep::from_index(index);
            let means: Vec<i64> = (-3000..3000).map(|m| m * 97).collect();
            let got = step.means_in_steps(means.iter().copied());
            for (&mean, &offset) in means.iter().zip(&got) {
                let exact = mean as f64 / 256.0 / f64::from(step.value());
                assert!(
                    (exact - f64::from(offset)).abs() <= 0.5 + 1e-6,
                    "{index} {mean}"
                );
            }
        }
        assert_eq!(
            LatentStep::UNIT.means_in_steps([256, -384, 127].into_iter()),
            [1, -1, 0]
        );
        assert_eq!(LatentStep::nearest(f64::NAN), None);
    }
}
