//! A bank of discretized Laplace tables chosen by a transmitted index, for coding values
//! whose spread a coder knows per group of symbols (CompressAI's "indexed scale table" idea).
//!
//! Tables are built in integer arithmetic from fixed constants, so every machine builds the
//! same tables, and the index that selects one is part of the stream: no floating-point
//! value decides how bits are parsed. Values beyond a table's range are coded as an escape
//! symbol followed by an Exp-Golomb-style suffix under uniform tables.

use std::sync::OnceLock;

use super::{CategoricalTable, EntropyError, SymbolDecoder};

/// Number of tables in the bank.
pub const SCALES: usize = 64;

/// Scale (mean absolute value) of table `j` is `0.15 * 1.16^j` ([`scale_of`]). Each table's ratio
/// `theta_j = exp(-1 / scale_j)` in 0.32 fixed point, computed once (Python:
/// `round(math.exp(-1/(0.15*1.16**j))*2**32)`) and fixed here so no machine recomputes it.
const THETA: [u64; SCALES] = [
    5465921, 13709277, 30288857, 59988211, 108121821, 179668314, 278360635, 405992906, 562109221,
    744102916, 947640487, 1167266407, 1397043631, 1631119639, 1864155930, 2091602491, 2309829577,
    2516145722, 2708736102, 2886553069, 3049184671, 3196719820, 3329622198, 3448619580, 3554611382,
    3648594572, 3731606575, 3804682947, 3868827384, 3924991618, 3974063033, 4016858104, 4054120104,
    4086519830, 4114658375, 4139071202, 4160232966, 4178562683, 4194428969, 4208155147, 4220024106,
    4230282832, 4239146576, 4246802639, 4253413790, 4259121318, 4264047748, 4268299243, 4271967727,
    4275132744, 4277863089, 4280218234, 4282249573, 4284001500, 4285512357, 4286815248, 4287938748,
    4288907519, 4289742841, 4290463078, 4291084068, 4291619477, 4292081090, 4292479072,
];

/// Largest magnitude a table codes directly; larger values escape.
const MAX_RADIUS: i64 = 1500;

/// The bank's scale grid: table `j` has scale `SMALLEST_SCALE · SCALE_RATIO^j` (`THETA` and
/// [`index_for_log_scale`]'s integer constants are computed from these two).
pub const SMALLEST_SCALE: f64 = 0.15;
/// Ratio of neighbouring tables' scales.
pub const SCALE_RATIO: f64 = 1.16;

/// Scale of table `j` (for encoders choosing an index; never used to parse).
pub fn scale_of(index: usize) -> f64 {
    SMALLEST_SCALE * SCALE_RATIO.powi(index as i32)
}

/// The table index whose scale best matches a mean absolute value.
pub fn index_for_mean_abs(mean_abs: f64) -> u8 {
    if mean_abs.is_nan() || mean_abs <= SMALLEST_SCALE {
        return 0;
    }
    let j = ((mean_abs / SMALLEST_SCALE).ln() / SCALE_RATIO.ln()).round();
    j.clamp(0.0, (SCALES - 1) as f64) as u8
}

/// The table index for a log-scale `s` given as a multiple of 2^-8 (what the learned
/// coder's exact hyper-synthesis computes): the nearest `j` with `scale_of(j) ≈ exp(s)`, in
/// integers only, since it decides how a stream is parsed:
/// `(s − ln SMALLEST_SCALE·256) / (ln SCALE_RATIO·256)`.
pub fn index_for_log_scale(s_q8: i64) -> u8 {
    // round(ln(0.15) * 256) = -486; round(2^16 / (ln(1.16) * 256)) = 1725 (a test checks
    // them against the grid).
    let j = ((s_q8 + 486) * 1725 + (1 << 15)) >> 16;
    j.clamp(0, SCALES as i64 - 1) as u8
}

/// One Laplace table: symbols `-radius..=radius`, plus an escape symbol at each end.
struct LaplaceTable {
    radius: i32,
    table: CategoricalTable,
}

impl LaplaceTable {
    fn build(theta: u64) -> Self {
        // Radius: where theta^r falls below 2^-14 of the peak, capped by the table size.
        let one = 1u64 << 32;
        let mut weights = vec![one];
        let mut w = one;
        while weights.len() < MAX_RADIUS as usize + 1 && w > one >> 14 {
            w = ((u128::from(w) * u128::from(theta)) >> 32) as u64;
            weights.push(w.max(1));
        }
        let radius = (weights.len() - 1) as i32;
        let next = ((u128::from(w) * u128::from(theta)) >> 32) as u64;
        // Tail beyond the radius: next / (1 - theta), in the same fixed point.
        let tail = ((u128::from(next) << 32) / u128::from((one - theta).max(1)))
            .min(u128::from(u64::MAX >> 16)) as u64;
        // Counts keep 20 bits of the weights: plenty for 12-bit tables, small enough to sum.
        let mut counts = Vec::with_capacity(2 * weights.len() + 1);
        counts.push(tail >> 12);
        counts.extend(weights.iter().rev().map(|&w| w >> 12));
        counts.extend(weights[1..].iter().map(|&w| w >> 12));
        counts.push(tail >> 12);
        // Symbols run from -radius-1 (escape below) to radius+1 (escape above).
        let table = CategoricalTable::from_counts(
            -radius - 1,
            &counts.iter().map(|&c| c.max(1)).collect::<Vec<_>>(),
        )
        .expect("bank table within the alphabet limit");
        Self { radius, table }
    }
}

/// The 64 Laplace tables and the uniform tables escapes use.
pub struct ScaleBank {
    tables: Vec<LaplaceTable>,
    /// Uniform over 0..=31: the bit length of an escaped excess.
    bit_length: CategoricalTable,
    /// Uniform over 0..=255: one byte of an escaped excess.
    byte: CategoricalTable,
    /// Uniform over 0..=1: one bit.
    bit: CategoricalTable,
}

impl ScaleBank {
    /// The bank, built once per process.
    pub fn get() -> &'static ScaleBank {
        static BANK: OnceLock<ScaleBank> = OnceLock::new();
        BANK.get_or_init(|| ScaleBank {
            tables: THETA.iter().map(|&t| LaplaceTable::build(t)).collect(),
            bit_length: CategoricalTable::from_counts(0, &[1; 32]).expect("uniform table"),
            byte: CategoricalTable::from_counts(0, &[1; 256]).expect("uniform table"),
            bit: CategoricalTable::from_counts(0, &[1; 2]).expect("uniform table"),
        })
    }

    /// Pushes the symbols that code `value` under table `index` onto `out`, in decoding order.
    pub fn push_symbols<'a>(
        &'a self,
        index: u8,
        value: i32,
        out: &mut Vec<(&'a CategoricalTable, i32)>,
    ) {
        let t = &self.tables[usize::from(index).min(SCALES - 1)];
        if value.abs() <= t.radius {
            out.push((&t.table, value));
            return;
        }
        let escape = if value > 0 {
            t.radius + 1
        } else {
            -t.radius - 1
        };
        out.push((&t.table, escape));
        // Excess >= 1; code its bit length, then its bits below the leading one.
        let excess = value.unsigned_abs() - t.radius as u32;
        let bits = 32 - excess.leading_zeros();
        out.push((&self.bit_length, (bits - 1) as i32));
        let mut remaining = bits - 1;
        while remaining >= 8 {
            remaining -= 8;
            out.push((&self.byte, ((excess >> remaining) & 0xff) as i32));
        }
        while remaining > 0 {
            remaining -= 1;
            out.push((&self.bit, ((excess >> remaining) & 1) as i32));
        }
    }

    /// Decodes one value coded with [`push_symbols`](Self::push_symbols) under `index`.
    pub fn decode(&self, index: u8, decoder: &mut SymbolDecoder) -> Result<i32, EntropyError> {
        let t = &self.tables[usize::from(index).min(SCALES - 1)];
        let symbol = decoder.decode(&t.table);
        // Stops a forged payload at the first symbol past its data, however large its frame.
        decoder.check()?;
        if symbol.abs() <= t.radius {
            return Ok(symbol);
        }
        let bits = decoder.decode(&self.bit_length) as u32 + 1;
        let mut excess: u32 = 1;
        let mut remaining = bits - 1;
        while remaining >= 8 {
            remaining -= 8;
            excess = (excess << 8) | decoder.decode(&self.byte) as u32;
        }
        while remaining > 0 {
            remaining -= 1;
            excess = (excess << 1) | decoder.decode(&self.bit) as u32;
        }
        let magnitude = i64::from(t.radius) + i64::from(excess);
        let magnitude = i32::try_from(magnitude).map_err(|_| EntropyError::EscapeOverflow)?;
        Ok(if symbol > 0 { magnitude } else { -magnitude })
    }

    /// Ideal cost in bits of `value` under table `index` (for encoders choosing indices).
    pub fn bits(&self, index: u8, value: i32) -> f64 {
        let t = &self.tables[usize::from(index).min(SCALES - 1)];
        if value.abs() <= t.radius {
            return t.table.bits(value);
        }
        let escape = if value > 0 {
            t.radius + 1
        } else {
            -t.radius - 1
        };
        let excess = value.unsigned_abs() - t.radius as u32;
        t.table.bits(escape) + 5.0 + f64::from(31 - excess.leading_zeros())
    }

    /// Of `candidates`, the index that codes all of `values` in the fewest bits (the first of
    /// equals; 0 if there are no candidates).
    pub fn cheapest_index(&self, values: &[i32], candidates: impl IntoIterator<Item = u8>) -> u8 {
        candidates
            .into_iter()
            .map(|i| (i, values.iter().map(|&v| self.bits(i, v)).sum::<f64>()))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(0, |(i, _)| i)
    }

    /// The cheapest index of the whole bank for `values`, costed through their histogram (so
    /// the search costs 64 tables × distinct values, not × values). Where few values are large
    /// and most are zero, the mean's guess can be several tables off.
    pub fn cheapest_of_all(&self, values: &[i32]) -> u8 {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        let histogram: Vec<(i32, f64)> = sorted
            .chunk_by(|a, b| a == b)
            .map(|run| (run[0], run.len() as f64))
            .collect();
        (0..SCALES as u8)
            .map(|i| {
                let bits: f64 = histogram.iter().map(|&(v, n)| n * self.bits(i, v)).sum();
                (i, bits)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(0, |(i, _)| i)
    }

    /// The cheapest index for `values` within two of the one their mean magnitude suggests:
    /// nearly always the cheapest of all, at a twelfth of the search.
    pub fn index_near_mean(&self, values: &[i32]) -> u8 {
        let mean_abs = values
            .iter()
            .map(|v| f64::from(v.unsigned_abs()))
            .sum::<f64>()
            / values.len().max(1) as f64;
        let guess = index_for_mean_abs(mean_abs);
        self.cheapest_index(
            values,
            guess.saturating_sub(2)..=(guess + 2).min(SCALES as u8 - 1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_scale_indices_match_the_bank_scales() {
        for j in 0..SCALES {
            let s = scale_of(j).ln() * 256.0;
            assert_eq!(usize::from(index_for_log_scale(s.round() as i64)), j);
        }
        assert_eq!(index_for_log_scale(-100_000), 0);
        assert_eq!(index_for_log_scale(100_000), SCALES as u8 - 1);
    }

    #[test]
    fn the_fixed_constants_come_from_the_grid() {
        for (j, &theta) in THETA.iter().enumerate() {
            let exact = (-1.0 / scale_of(j)).exp() * 2f64.powi(32);
            assert!((exact - theta as f64).abs() <= 1.0, "table {j}");
        }
        assert_eq!((SMALLEST_SCALE.ln() * 256.0).round(), -486.0);
        assert_eq!((65536.0 / (SCALE_RATIO.ln() * 256.0)).round(), 1725.0);
    }
    use crate::entropy::{encode, write_words};

    #[test]
    fn values_round_trip_under_every_table_including_escapes() {
        let bank = ScaleBank::get();
        let values = [
            0,
            1,
            -1,
            5,
            -17,
            300,
            -1499,
            1501,
            -40_000,
            1 << 28,
            -(1 << 30),
        ];
        let mut items = Vec::new();
        for index in [0u8, 5, 20, 40, 63] {
            for &v in &values {
                bank.push_symbols(index, v, &mut items);
            }
        }
        let mut bytes = Vec::new();
        write_words(&mut bytes, &encode(items.iter().copied()).unwrap());
        let mut dec = SymbolDecoder::new(&bytes, crate::entropy::StreamEnd::Sealed).unwrap();
        for index in [0u8, 5, 20, 40, 63] {
            for &v in &values {
                assert_eq!(bank.decode(index, &mut dec).unwrap(), v, "table {index}");
            }
        }
        dec.finish().unwrap();
    }

    #[test]
    fn a_matching_scale_codes_laplace_data_near_its_entropy() {
        // Deterministic samples of a rounded continuous Laplace with scale 6.
        let mut state = 12345u64;
        let samples: Vec<i32> = (0..20_000)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64 - 0.5;
                (-6.0 * u.signum() * (1.0 - 2.0 * u.abs()).ln()).round() as i32
            })
            .collect();
        let mean_abs =
            samples.iter().map(|v| f64::from(v.abs())).sum::<f64>() / samples.len() as f64;
        let bank = ScaleBank::get();
        let best = index_for_mean_abs(mean_abs);
        let cost = |i: u8| samples.iter().map(|&v| bank.bits(i, v)).sum::<f64>();
        // The chosen index is within a few percent of the best index in the bank.
        let optimum = (0..SCALES as u8).map(cost).fold(f64::INFINITY, f64::min);
        assert!(cost(best) < optimum * 1.03, "{} vs {optimum}", cost(best));
        // And near the empirical entropy of the samples.
        let mut hist = std::collections::HashMap::new();
        for &v in &samples {
            *hist.entry(v).or_insert(0usize) += 1;
        }
        let n = samples.len() as f64;
        let entropy: f64 = hist
            .values()
            .map(|&c| -(c as f64 / n).log2() * c as f64)
            .sum();
        assert!(optimum < entropy * 1.02, "{optimum} vs entropy {entropy}");
    }
}
