//! A register-blocked GEMM in portable Rust, for targets where the `gemm` crate has only its
//! scalar kernels: WebAssembly. Its inner loops work on fixed groups of columns, which LLVM
//! turns into SIMD (`simd128`: four `f32x4`, or four `f64x2`, per group) with no
//! target-specific code, so the same source is tested natively against the definition.
//!
//! Every output sums its products in order of `p` (no fused multiply-add), so it gives the
//! same result on every machine. The `gemm` crate's kernels sum in other orders: in `f32`
//! (the synthesis) the two differ by rounding, the pixels by at most a code value; in `f64`
//! (the exact hyper-synthesis, whose sums are integers below 2^53) they agree exactly.

use std::ops::{Add, Mul};

/// Rows of `c` one block computes (their accumulators stay in registers).
const ROWS: usize = 4;

/// `c = a · b` in `f32`, blocks of 16 columns.
pub fn gemm_f32(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32], rsc: usize) {
    gemm::<f32, 16>(m, k, n, a, b, c, rsc);
}

/// `c = a · b` in `f64`, blocks of 8 columns.
pub fn gemm_f64(m: usize, k: usize, n: usize, a: &[f64], b: &[f64], c: &mut [f64], rsc: usize) {
    gemm::<f64, 8>(m, k, n, a, b, c, rsc);
}

/// `c = a · b` for row-major `a` (m×k), `b` (k×n) and `c` (m×n, row stride `rsc`), in blocks
/// of `ROWS`×`L`.
fn gemm<T, const L: usize>(m: usize, k: usize, n: usize, a: &[T], b: &[T], c: &mut [T], rsc: usize)
where
    T: Copy + Default + Add<Output = T> + Mul<Output = T>,
{
    assert!(
        a.len() >= m * k && b.len() >= k * n,
        "gemm: operands too short"
    );
    assert!(
        m == 0 || n == 0 || c.len() >= (m - 1) * rsc + n,
        "gemm: output too short"
    );
    let full = n - n % L;
    let mut i = 0;
    while i + ROWS <= m {
        for j in (0..full).step_by(L) {
            block::<T, L>(
                k,
                n,
                &a[i * k..(i + ROWS) * k],
                &b[j..],
                &mut c[i * rsc + j..],
                rsc,
            );
        }
        i += ROWS;
    }
    // The rows and columns the blocks leave, one value at a time, summed in the same order.
    for row in 0..m {
        let columns = if row < i { full..n } else { 0..n };
        for col in columns {
            let mut sum = T::default();
            for p in 0..k {
                sum = sum + a[row * k + p] * b[p * n + col];
            }
            c[row * rsc + col] = sum;
        }
    }
}

/// One `ROWS`×`L` block of `c`: `a` holds its rows of A, `b` starts at its first column.
#[inline(always)]
fn block<T, const L: usize>(k: usize, n: usize, a: &[T], b: &[T], c: &mut [T], rsc: usize)
where
    T: Copy + Default + Add<Output = T> + Mul<Output = T>,
{
    let mut acc = [[T::default(); L]; ROWS];
    for p in 0..k {
        let bp: &[T; L] = b[p * n..p * n + L].try_into().expect("L values");
        for (r, row) in acc.iter_mut().enumerate() {
            let av = a[r * k + p];
            for (acc, &bv) in row.iter_mut().zip(bp) {
                *acc = *acc + av * bv;
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        c[r * rsc..r * rsc + L].copy_from_slice(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, summed in the same order.
    fn naive(m: usize, k: usize, n: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut sum = 0.0f32;
                for p in 0..k {
                    sum += a[i * k + p] * b[p * n + j];
                }
                c[i * n + j] = sum;
            }
        }
        c
    }

    #[test]
    fn blocked_gemm_equals_the_definition_bit_for_bit_at_every_edge() {
        let mut seed = 7u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for (m, k, n) in [
            (4, 3, 16),
            (12, 108, 57),
            (9, 5, 35),
            (1, 1, 1),
            (8, 33, 48),
            (3, 7, 5),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| next()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| next()).collect();
            let want = naive(m, k, n, &a, &b);
            // A wider output row than n, as the convolution's bands use.
            let rsc = n + 3;
            let mut c = vec![f32::NAN; (m - 1) * rsc + n];
            gemm_f32(m, k, n, &a, &b, &mut c, rsc);
            for i in 0..m {
                assert_eq!(
                    &c[i * rsc..i * rsc + n],
                    &want[i * n..(i + 1) * n],
                    "{m}x{k}x{n} row {i}"
                );
            }
            // In f64, on integers, as the hyper-synthesis uses it.
            let a: Vec<f64> = a.iter().map(|&v| (v * 512.0).round() as f64).collect();
            let b: Vec<f64> = b.iter().map(|&v| (v * 512.0).round() as f64).collect();
            let mut c = vec![f64::NAN; (m - 1) * rsc + n];
            gemm_f64(m, k, n, &a, &b, &mut c, rsc);
            for i in 0..m {
                for j in 0..n {
                    let exact: f64 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                    assert_eq!(c[i * rsc + j], exact, "{m}x{k}x{n} ({i}, {j})");
                }
            }
        }
    }
}
