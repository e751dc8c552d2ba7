//! Inference kernels for the learned transforms: convolution as im2col + GEMM over bands of
//! output rows (the bands run on all cores and keep the column buffer small), bias, ReLU and
//! pixel shuffle. Feature maps are planar: channel, then row, then column.
//!
//! The same code runs in `f32` for the analysis and synthesis transforms and in `f64` holding
//! exact integers for the hyper-synthesis (see [`super::hyper`]), where the GEMM's summation
//! order cannot change the result.

use super::arch::ConvSpec;
use crate::threads::threads;

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

/// The element types the kernels run in: `f32`, and `f64` for the exact hyper-synthesis
/// (every product and partial sum there is an integer below 2^53, see `super::hyper`, so the
/// GEMM's summation order cannot change its result).
pub trait Scalar:
    'static + Copy + Default + Send + Sync + PartialOrd + std::ops::Add<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;

    /// `c = a · b` for row-major `a` (m×k) and `b` (k×n) into `c` with row stride `rsc`,
    /// through the `gemm` crate (measured 1.2–3× matrixmultiply's rate on the synthesis
    /// shapes here), on the calling thread: the bands are the parallelism.
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
    ) {
        gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            rsc,
            false,
            a,
            1,
            k as isize,
            b,
            1,
            n as isize,
            Self::ZERO,
            Self::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The GEMM's operands as slices: `a` m×k, `b` k×n, `c` m rows of stride `rsc`.
///
/// # Safety
/// The pointers must hold those sizes, as [`Scalar::gemm`] requires.
#[cfg(target_arch = "wasm32")]
unsafe fn gemm_slices<'a, T>(
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    b: *const T,
    c: *mut T,
    rsc: isize,
) -> (&'a [T], &'a [T], &'a mut [T], usize) {
    let rsc = rsc as usize;
    let c_len = if m == 0 { 0 } else { (m - 1) * rsc + n };
    // SAFETY: as the caller promises.
    unsafe {
        (
            std::slice::from_raw_parts(a, m * k),
            std::slice::from_raw_parts(b, k * n),
            std::slice::from_raw_parts_mut(c, c_len),
            rsc,
        )
    }
}

impl Scalar for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;

    /// In WebAssembly the `gemm` crate has only a scalar kernel; the blocked one becomes
    /// `simd128` code (about three times as fast in a browser).
    #[cfg(target_arch = "wasm32")]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        rsc: isize,
    ) {
        // SAFETY: the caller's pointers hold these sizes (the trait's contract).
        let (a, b, c, rsc) = unsafe { gemm_slices(m, k, n, a, b, c, rsc) };
        super::blocked_gemm::gemm_f32(m, k, n, a, b, c, rsc);
    }
}

impl Scalar for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;

    /// As for `f32`; the hyper-synthesis's sums are exact, so this agrees with the `gemm`
    /// crate to the bit.
    #[cfg(target_arch = "wasm32")]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const f64,
        b: *const f64,
        c: *mut f64,
        rsc: isize,
    ) {
        // SAFETY: the caller's pointers hold these sizes (the trait's contract).
        let (a, b, c, rsc) = unsafe { gemm_slices(m, k, n, a, b, c, rsc) };
        super::blocked_gemm::gemm_f64(m, k, n, a, b, c, rsc);
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

/// Bytes of column buffer per band: with the band's GEMM output it stays in a core's L2
/// cache, so the epilogue reads what the GEMM just wrote from cache.
const BAND_BYTES: usize = 256 << 10;

impl<T: Scalar> ConvKernel<T> {
    /// The whole layer: convolution, bias, ReLU if `relu`, then the pixel shuffle if the
    /// layer has one.
    pub fn forward(&self, input: &FeatureMap<T>, relu: bool) -> FeatureMap<T> {
        if relu {
            self.forward_with(input, |v| if v < T::ZERO { T::ZERO } else { v })
        } else {
            self.forward_with(input, |v| v)
        }
    }

    /// The whole layer with `activation` applied to every biased output before the shuffle.
    pub fn forward_with(
        &self,
        input: &FeatureMap<T>,
        activation: impl Fn(T) -> T + Sync,
    ) -> FeatureMap<T> {
        self.run(input, self.spec.upsample.max(1), activation)
    }

    /// Convolution in bands of output rows spread over the threads. Each band is im2col, one
    /// GEMM into a small buffer, then an epilogue that adds the bias, applies `activation`
    /// and writes every value to its place after a pixel shuffle by `r` (1: none), so the
    /// output is written once and never zero-filled.
    fn run(
        &self,
        input: &FeatureMap<T>,
        r: usize,
        activation: impl Fn(T) -> T + Sync,
    ) -> FeatureMap<T> {
        let s = &self.spec;
        assert_eq!(input.channels, s.in_channels, "{}: input channels", s.name);
        assert_eq!(s.conv_out() % (r * r), 0, "{}: shuffle factor", s.name);
        let (ho, wo) = (
            s.conv_output_size(input.height),
            s.conv_output_size(input.width),
        );
        let m = s.conv_out();
        let (channels, height, width) = (m / (r * r), ho * r, wo * r);
        let len = channels * height * width;
        let mut data: Vec<T> = Vec::with_capacity(len);
        let kdim = s.in_channels * s.kernel * s.kernel;
        let elem = std::mem::size_of::<T>();
        let band = (BAND_BYTES / (elem * kdim * wo).max(1)).clamp(1, ho.max(1));
        let bands: Vec<usize> = (0..ho).step_by(band).collect();
        let workers = threads().min(bands.len()).max(1);
        let out_ptr = SharedOut(data.as_mut_ptr());
        let out_ref = &out_ptr;
        let activation = &activation;
        let bands = &bands;
        let work = move |w: usize| {
            let (mut cols, mut product) = (Vec::new(), Vec::new());
            for &y0 in bands.iter().skip(w).step_by(workers) {
                let rows = band.min(ho - y0);
                let n = rows * wo;
                self.im2col(input, y0, rows, wo, &mut cols);
                if product.len() < m * n {
                    product.resize(m * n, T::ZERO);
                }
                // SAFETY: `cols` is kdim×n and `product` at least m×n, row-major.
                unsafe {
                    T::gemm(
                        m,
                        kdim,
                        n,
                        self.weight.as_ptr(),
                        cols.as_ptr(),
                        product.as_mut_ptr(),
                        n as isize,
                    );
                }
                for row in 0..rows {
                    for group in 0..m / r {
                        let (ch, i) = (group / r, group % r);
                        let y = (y0 + row) * r + i;
                        // SAFETY: output row (ch, y) comes from output channels
                        // group·r .. group·r + r at conv row y0 + row alone: no other
                        // band or group writes it, and it lies inside `len`.
                        let dst = unsafe {
                            std::slice::from_raw_parts_mut(
                                out_ref.0.add((ch * height + y) * width)
                                    as *mut std::mem::MaybeUninit<T>,
                                width,
                            )
                        };
                        let src = |j: usize| {
                            let o = group * r + j;
                            (&product[o * n + row * wo..][..wo], self.bias[o])
                        };
                        write_shuffled_row(dst, r, src, activation);
                    }
                }
            }
        };
        // Worker 0 runs on the calling thread: no spawn at all when one thread does the work.
        std::thread::scope(|scope| {
            for w in 1..workers {
                scope.spawn(move || work(w));
            }
            work(0);
        });
        // SAFETY: the bands cover rows 0..ho and every channel, so the epilogues wrote all
        // `len` values (the shuffle is a bijection onto the output).
        unsafe { data.set_len(len) };
        FeatureMap {
            channels,
            height,
            width,
            data,
        }
    }

    /// Columns for output rows `y0..y0 + rows`: [in · k · k][rows · wo]. Every value is
    /// written (padding as zeros), so `cols` is reused without clearing.
    fn im2col(&self, input: &FeatureMap<T>, y0: usize, rows: usize, wo: usize, cols: &mut Vec<T>) {
        let s = &self.spec;
        let (k, stride, pad) = (s.kernel, s.stride, s.padding() as isize);
        let n = rows * wo;
        if cols.len() < s.in_channels * k * k * n {
            cols.resize(s.in_channels * k * k * n, T::ZERO);
        }
        let (h, w) = (input.height as isize, input.width as isize);
        for c in 0..s.in_channels {
            let plane = &input.data[c * input.height * input.width..][..input.height * input.width];
            for ky in 0..k {
                for kx in 0..k {
                    let row = &mut cols[((c * k + ky) * k + kx) * n..][..n];
                    for r in 0..rows {
                        let dst = &mut row[r * wo..(r + 1) * wo];
                        let iy = ((y0 + r) * stride) as isize + ky as isize - pad;
                        if iy < 0 || iy >= h {
                            dst.fill(T::ZERO);
                            continue;
                        }
                        let src = &plane[iy as usize * input.width..][..input.width];
                        if stride == 1 {
                            // Output x reads input x + kx - pad: one contiguous copy of the
                            // part inside the input, zeros either side.
                            let shift = kx as isize - pad;
                            let first = ((-shift).max(0) as usize).min(wo);
                            let last = ((w - shift).min(wo as isize)).max(first as isize) as usize;
                            let from = (first as isize + shift) as usize;
                            dst[..first].fill(T::ZERO);
                            dst[first..last].copy_from_slice(&src[from..from + (last - first)]);
                            dst[last..].fill(T::ZERO);
                            continue;
                        }
                        for (ox, d) in dst.iter_mut().enumerate() {
                            let ix = (ox * stride) as isize + kx as isize - pad;
                            *d = if ix >= 0 && ix < w {
                                src[ix as usize]
                            } else {
                                T::ZERO
                            };
                        }
                    }
                }
            }
        }
    }
}

/// One output row of a shuffled layer: `dst[x·r + j] = activation(src(j)[x] + bias(j))`.
#[inline(always)]
fn write_shuffled_row<'a, T: Scalar + 'a>(
    dst: &mut [std::mem::MaybeUninit<T>],
    r: usize,
    src: impl Fn(usize) -> (&'a [T], T),
    activation: &impl Fn(T) -> T,
) {
    match r {
        1 => {
            let (a, ba) = src(0);
            for (d, &v) in dst.iter_mut().zip(a) {
                d.write(activation(v + ba));
            }
        }
        2 => {
            let ((a, ba), (b, bb)) = (src(0), src(1));
            for ((d, &u), &v) in dst.chunks_exact_mut(2).zip(a).zip(b) {
                d[0].write(activation(u + ba));
                d[1].write(activation(v + bb));
            }
        }
        _ => {
            for j in 0..r {
                let (a, ba) = src(j);
                for (x, &v) in a.iter().enumerate() {
                    dst[x * r + j].write(activation(v + ba));
                }
            }
        }
    }
}

/// Runs layers with ReLU between them (not after the last).
pub fn run_chain<T: Scalar>(layers: &[ConvKernel<T>], input: FeatureMap<T>) -> FeatureMap<T> {
    let mut x = input;
    for (i, layer) in layers.iter().enumerate() {
        x = layer.forward(&x, i + 1 < layers.len());
    }
    x
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::threads::set_threads;

    /// `[c·r², h, w]` to `[c, h·r, w·r]`, PyTorch's channel order.
    pub(crate) fn pixel_shuffle<T: Copy + Default>(
        input: &FeatureMap<T>,
        r: usize,
    ) -> FeatureMap<T> {
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
        // The analysis's 5×5 stride-2 layers, the synthesis's 3×3 stride-1 layers, and a
        // frame wide enough that every band is one row and the threads share the bands.
        for (channels, kernel, stride, (h, w), size) in [
            (3, 5, 2, (23, 17), (12, 9)),
            (3, 3, 1, (23, 17), (23, 17)),
            (3, 1, 1, (23, 17), (23, 17)),
            (16, 3, 1, (7, 300), (7, 300)),
        ] {
            let spec = test_spec(channels, kernel, stride, 1);
            let (kernel, x) = random_layer(&spec, h, w);
            let fast = kernel.forward(&x, false);
            let slow = naive_conv(&spec, &kernel.weight, &kernel.bias, &x);
            assert_eq!((fast.height, fast.width), size);
            assert_close(&fast.data, &slow.data);
        }
    }

    #[test]
    fn fused_relu_and_shuffle_match_the_separate_steps() {
        let spec = test_spec(16, 3, 1, 2);
        let (kernel, x) = random_layer(&spec, 5, 300);
        for workers in [1, 2, 3] {
            set_threads(workers);
            let mut expected =
                pixel_shuffle(&naive_conv(&spec, &kernel.weight, &kernel.bias, &x), 2);
            expected.data.iter_mut().for_each(|v| *v = v.max(0.0));
            let fused = kernel.forward(&x, true);
            assert_eq!(
                (fused.channels, fused.height, fused.width),
                (expected.channels, expected.height, expected.width)
            );
            assert_close(&fused.data, &expected.data);
        }
        set_threads(0);
    }

    fn test_spec(in_channels: usize, kernel: usize, stride: usize, upsample: usize) -> ConvSpec {
        ConvSpec {
            name: "t".into(),
            in_channels,
            out_channels: 4,
            kernel,
            stride,
            upsample,
        }
    }

    /// A layer with pseudo-random weights and an `h`×`w` input for it.
    fn random_layer(spec: &ConvSpec, h: usize, w: usize) -> (ConvKernel<f32>, FeatureMap<f32>) {
        let mut state = 7u32;
        let mut rnd = || {
            state = state.wrapping_mul(1664525).wrapping_add(1013904223);
            (state >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        let k = spec.kernel;
        let weight: Vec<f32> = (0..spec.conv_out() * spec.in_channels * k * k)
            .map(|_| rnd())
            .collect();
        let bias: Vec<f32> = (0..spec.conv_out()).map(|_| rnd()).collect();
        let x = FeatureMap {
            channels: spec.in_channels,
            height: h,
            width: w,
            data: (0..spec.in_channels * h * w).map(|_| rnd()).collect(),
        };
        let kernel = ConvKernel {
            spec: spec.clone(),
            weight,
            bias,
        };
        (kernel, x)
    }

    fn assert_close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (a, b) in a.iter().zip(b) {
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
