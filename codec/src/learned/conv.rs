//! Inference kernels for the learned transforms: convolution as im2col + GEMM over bands of
//! output rows (the bands run on all cores and keep the column buffer small), bias, ReLU and
//! pixel shuffle. Feature maps are planar: channel, then row, then column.
//!
//! The same code runs in `f32` for the analysis and synthesis transforms and in `f64` holding
//! exact integers for the hyper-synthesis (see [`super::hyper`]), where the GEMM's summation
//! order cannot change the result.

use super::arch::ConvSpec;

/// A planar feature map.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMap<T> {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<T>,
}

impl<T: Copy + Default> FeatureMap<T> {
    pub fn zeros(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
            data: vec![T::default(); channels * height * width],
        }
    }

    /// The top-left `height`×`width` of every channel.
    pub fn cropped(&self, height: usize, width: usize) -> Self {
        if (height, width) == (self.height, self.width) {
            return self.clone();
        }
        let mut out = Self::zeros(self.channels, height, width);
        for c in 0..self.channels {
            for y in 0..height {
                let src = (c * self.height + y) * self.width;
                let dst = (c * height + y) * width;
                out.data[dst..dst + width].copy_from_slice(&self.data[src..src + width]);
            }
        }
        out
    }
}

/// The element types the kernels run in.
pub trait Scalar: Copy + Default + Send + Sync + PartialOrd + std::ops::Add<Output = Self> {
    const ZERO: Self;
    /// `c = a · b` for row-major `a` (m×k) and `b` (k×n) into `c` with row stride `rsc`.
    ///
    /// # Safety
    /// The pointers must hold the sizes the strides describe.
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        b: *const Self,
        c: *mut Self,
        rsc: isize,
    );
}

impl Scalar for f32 {
    const ZERO: f32 = 0.0;
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        rsc: isize,
    ) {
        matrixmultiply::sgemm(
            m, k, n, 1.0, a, k as isize, 1, b, n as isize, 1, 0.0, c, rsc, 1,
        );
    }
}

impl Scalar for f64 {
    const ZERO: f64 = 0.0;
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const f64,
        b: *const f64,
        c: *mut f64,
        rsc: isize,
    ) {
        matrixmultiply::dgemm(
            m, k, n, 1.0, a, k as isize, 1, b, n as isize, 1, 0.0, c, rsc, 1,
        );
    }
}

/// A convolution layer's weights, ready for the GEMM.
#[derive(Debug, Clone)]
pub struct ConvKernel<T> {
    pub spec: ConvSpec,
    /// [conv_out][in · k · k], row-major.
    pub weight: Vec<T>,
    pub bias: Vec<T>,
}

/// Output pointer shared by the band threads; each writes its own columns.
struct SharedOut<T>(*mut T);
unsafe impl<T> Send for SharedOut<T> {}
unsafe impl<T> Sync for SharedOut<T> {}

static THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Sets the number of threads the kernels use (0: one per core, at most 8). Results do not
/// depend on it.
pub fn set_threads(n: usize) {
    THREADS.store(n, std::sync::atomic::Ordering::Relaxed);
}

/// Number of threads the kernels use: [`set_threads`], else `$AECODEC_THREADS`, else one
/// per core (at most 8).
pub fn threads() -> usize {
    match THREADS.load(std::sync::atomic::Ordering::Relaxed) {
        0 => std::env::var("AECODEC_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .min(8),
        n => n,
    }
}

impl<T: Scalar> ConvKernel<T> {
    /// Convolution (no shuffle, no activation): `input` to `[conv_out, ho, wo]`.
    pub fn conv(&self, input: &FeatureMap<T>) -> FeatureMap<T> {
        let s = &self.spec;
        assert_eq!(input.channels, s.in_channels, "{}: input channels", s.name);
        let (ho, wo) = (
            s.conv_output_size(input.height),
            s.conv_output_size(input.width),
        );
        let mut out: FeatureMap<T> = FeatureMap::zeros(s.conv_out(), ho, wo);
        let kdim = s.in_channels * s.kernel * s.kernel;
        // Rows per band: a column buffer of about 2 MB, at least one row.
        let elem = std::mem::size_of::<T>();
        let band = ((2usize << 20) / (elem * kdim * wo).max(1)).clamp(1, ho.max(1));
        let bands: Vec<usize> = (0..ho).step_by(band).collect();
        let workers = threads().min(bands.len()).max(1);
        let out_ptr = SharedOut(out.data.as_mut_ptr());
        let out_ref = &out_ptr;
        let plane = (ho * wo) as isize;
        std::thread::scope(|scope| {
            for w in 0..workers {
                let bands = &bands;
                scope.spawn(move || {
                    let mut cols = Vec::new();
                    for &y0 in bands.iter().skip(w).step_by(workers) {
                        let rows = band.min(ho - y0);
                        self.im2col(input, y0, rows, wo, &mut cols);
                        let n = rows * wo;
                        // SAFETY: this band writes columns y0*wo..y0*wo+n of each output
                        // channel's plane, disjoint from every other band.
                        unsafe {
                            T::gemm(
                                s.conv_out(),
                                kdim,
                                n,
                                self.weight.as_ptr(),
                                cols.as_ptr(),
                                out_ref.0.add(y0 * wo),
                                plane,
                            );
                        }
                    }
                });
            }
        });
        for (c, &b) in self.bias.iter().enumerate() {
            for v in &mut out.data[c * ho * wo..(c + 1) * ho * wo] {
                *v = *v + b;
            }
        }
        out
    }

    /// Columns for output rows `y0..y0 + rows`: [in · k · k][rows · wo].
    fn im2col(&self, input: &FeatureMap<T>, y0: usize, rows: usize, wo: usize, cols: &mut Vec<T>) {
        let s = &self.spec;
        let (k, stride, pad) = (s.kernel, s.stride, s.padding() as isize);
        let n = rows * wo;
        cols.clear();
        cols.resize(s.in_channels * k * k * n, T::ZERO);
        let (h, w) = (input.height as isize, input.width as isize);
        for c in 0..s.in_channels {
            let plane = &input.data[c * input.height * input.width..][..input.height * input.width];
            for ky in 0..k {
                for kx in 0..k {
                    let row = &mut cols[((c * k + ky) * k + kx) * n..][..n];
                    for r in 0..rows {
                        let iy = ((y0 + r) * stride) as isize + ky as isize - pad;
                        if iy < 0 || iy >= h {
                            continue;
                        }
                        let src = &plane[iy as usize * input.width..][..input.width];
                        let dst = &mut row[r * wo..(r + 1) * wo];
                        if stride == 1 {
                            // Output x reads input x + kx - pad: one contiguous copy of the
                            // part inside the input (the rest stays zero padding).
                            let shift = kx as isize - pad;
                            let first = (-shift).max(0) as usize;
                            let last = ((w - shift).min(wo as isize)).max(first as isize) as usize;
                            let from = (first as isize + shift) as usize;
                            dst[first..last].copy_from_slice(&src[from..from + (last - first)]);
                            continue;
                        }
                        for (ox, d) in dst.iter_mut().enumerate() {
                            let ix = (ox * stride) as isize + kx as isize - pad;
                            if ix >= 0 && ix < w {
                                *d = src[ix as usize];
                            }
                        }
                    }
                }
            }
        }
    }

    /// The whole layer: convolution, then the pixel shuffle if the layer has one.
    pub fn forward(&self, input: &FeatureMap<T>) -> FeatureMap<T> {
        let out = self.conv(input);
        if self.spec.upsample > 1 {
            pixel_shuffle(&out, self.spec.upsample)
        } else {
            out
        }
    }
}

/// `[c·r², h, w]` to `[c, h·r, w·r]`, PyTorch's channel order.
pub fn pixel_shuffle<T: Copy + Default>(input: &FeatureMap<T>, r: usize) -> FeatureMap<T> {
    let c = input.channels / (r * r);
    let (h, w) = (input.height, input.width);
    let mut out = FeatureMap::zeros(c, h * r, w * r);
    for ch in 0..c {
        for i in 0..r {
            for j in 0..r {
                let src = &input.data[((ch * r + i) * r + j) * h * w..][..h * w];
                for y in 0..h {
                    let dst_row = (ch * h * r + y * r + i) * w * r;
                    for x in 0..w {
                        out.data[dst_row + x * r + j] = src[y * w + x];
                    }
                }
            }
        }
    }
    out
}

/// In-place ReLU.
pub fn relu<T: Scalar>(map: &mut FeatureMap<T>) {
    for v in &mut map.data {
        if *v < T::ZERO {
            *v = T::ZERO;
        }
    }
}

/// Runs layers with ReLU between them (not after the last).
pub fn run_chain<T: Scalar>(layers: &[ConvKernel<T>], input: FeatureMap<T>) -> FeatureMap<T> {
    let mut x = input;
    for (i, layer) in layers.iter().enumerate() {
        x = layer.forward(&x);
        if i + 1 < layers.len() {
            relu(&mut x);
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_conv(spec: &ConvSpec, w: &[f32], b: &[f32], x: &FeatureMap<f32>) -> FeatureMap<f32> {
        let (ho, wo) = (
            spec.conv_output_size(x.height),
            spec.conv_output_size(x.width),
        );
        let mut out = FeatureMap::zeros(spec.conv_out(), ho, wo);
        let k = spec.kernel;
        for o in 0..spec.conv_out() {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = b[o];
                    for c in 0..spec.in_channels {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * spec.stride + ky) as isize - spec.padding() as isize;
                                let ix = (ox * spec.stride + kx) as isize - spec.padding() as isize;
                                if iy >= 0
                                    && ix >= 0
                                    && (iy as usize) < x.height
                                    && (ix as usize) < x.width
                                {
                                    acc += w[((o * spec.in_channels + c) * k + ky) * k + kx]
                                        * x.data
                                            [(c * x.height + iy as usize) * x.width + ix as usize];
                                }
                            }
                        }
                    }
                    out.data[(o * ho + oy) * wo + ox] = acc;
                }
            }
        }
        out
    }

    #[test]
    fn banded_gemm_convolution_matches_the_definition() {
        // The analysis's 5×5 stride-2 layers and the synthesis's 3×3 stride-1 layers.
        for (kernel, stride, size) in [(5, 2, (12, 9)), (3, 1, (23, 17)), (1, 1, (23, 17))] {
            check_against_definition(kernel, stride, size);
        }
    }

    fn check_against_definition(kernel: usize, stride: usize, size: (usize, usize)) {
        let spec = ConvSpec {
            name: "t".into(),
            in_channels: 3,
            out_channels: 4,
            kernel,
            stride,
            upsample: 1,
        };
        let mut state = 7u32;
        let mut rnd = || {
            state = state.wrapping_mul(1664525).wrapping_add(1013904223);
            (state >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        let weight: Vec<f32> = (0..4 * 3 * kernel * kernel).map(|_| rnd()).collect();
        let bias: Vec<f32> = (0..4).map(|_| rnd()).collect();
        let x = FeatureMap {
            channels: 3,
            height: 23,
            width: 17,
            data: (0..3 * 23 * 17).map(|_| rnd()).collect(),
        };
        let kernel = ConvKernel {
            spec: spec.clone(),
            weight: weight.clone(),
            bias: bias.clone(),
        };
        let fast = kernel.conv(&x);
        let slow = naive_conv(&spec, &weight, &bias, &x);
        assert_eq!((fast.height, fast.width), size);
        for (a, b) in fast.data.iter().zip(&slow.data) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn pixel_shuffle_follows_pytorch_order() {
        // 4 channels of 1x1 become one 2x2 channel: c = i*2 + j goes to (i, j).
        let x = FeatureMap {
            channels: 4,
            height: 1,
            width: 1,
            data: vec![1.0f32, 2.0, 3.0, 4.0],
        };
        let y = pixel_shuffle(&x, 2);
        assert_eq!(y.data, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!((y.channels, y.height, y.width), (1, 2, 2));
    }
}
