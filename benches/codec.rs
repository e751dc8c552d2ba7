//! Throughput of each decode stage on real content (the first frames of samples/bikes.mp4):
//! entropy coding, the container reader, the learned, PCA and pixel frame decoders, the learned
//! synthesis at 640x368 and 1280x720, and the whole path from `.aez` bytes to RGB frames.
//! Run with `cargo bench`.

use std::io::Cursor;
use std::ops::ControlFlow;
use std::path::PathBuf;

use aecodec::coders::FrameCoder;
use aecodec::container::FrameType;
use aecodec::container::{ContainerReader, ContainerWriter};
use aecodec::entropy::{encode, write_words, ScaleBank, SymbolDecoder};
use aecodec::learned::LearnedCoder;
use aecodec::pipeline::{
    decode_stream, encode_stream, FrameDecoder, FrameEncoder, FrameSink, FrameSlice,
};
use aecodec::registry::{CoderSpec, Model, ModelStore};
use aecodec::video::VideoReader;
use aecodec::RgbFrame;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn frames(n: usize) -> (Vec<RgbFrame>, aecodec::container::Rational) {
    let mut reader = VideoReader::open(&root().join("samples/bikes.mp4")).expect("sample clip");
    let rate = reader.info().frame_rate;
    let frames = (0..n)
        .map_while(|_| reader.next_frame().expect("decodes"))
        .collect();
    (frames, rate)
}

fn pca_spec() -> (CoderSpec, ModelStore) {
    let model = Model::load(&root().join("samples/models/pca8.model")).expect("default model");
    let Model::Pca(pca) = model.clone() else {
        panic!("pca8.model is a PCA model");
    };
    let mut store = ModelStore::new();
    store.add(model);
    (
        CoderSpec::Pca {
            components: pca.components,
            model: pca,
            step: 16.0,
        },
        store,
    )
}

/// An in-memory `.aez` of `frames` coded with `spec`.
fn aez_bytes(spec: &CoderSpec, frames: &[RgbFrame], rate: aecodec::container::Rational) -> Vec<u8> {
    let mut encoder = FrameEncoder::new(spec, frames[0].width, frames[0].height, rate, 1);
    let mut writer =
        ContainerWriter::new(Cursor::new(Vec::new()), encoder.header().clone()).unwrap();
    let mut source = FrameSlice::new(frames);
    encode_stream(&mut source, &mut encoder, &mut writer, None, |_, _| {
        ControlFlow::Continue(())
    })
    .unwrap();
    writer.finish().unwrap().0.into_inner()
}

/// A sink that only counts the bytes of the frames it is given (so that the benchmark does
/// not time keeping them).
struct CountBytes(usize);

impl FrameSink for CountBytes {
    type Error = std::convert::Infallible;
    fn write_frame(&mut self, frame: &RgbFrame) -> Result<(), Self::Error> {
        self.0 += frame.data.len();
        Ok(())
    }
}

fn entropy(c: &mut Criterion) {
    let bank = ScaleBank::get();
    // Laplace-like symbols with a mix of scales, as latents have.
    let values: Vec<(u8, i32)> = (0..1_000_000u32)
        .map(|i| {
            let index = (i % 7 * 6) as u8;
            let v = ((i.wrapping_mul(2654435761) >> 24) as i32 - 128) / (1 + (i % 5) as i32 * 8);
            (index, v)
        })
        .collect();
    let mut items = Vec::new();
    for &(index, v) in &values {
        bank.push_symbols(index, v, &mut items);
    }
    let mut group = c.benchmark_group("entropy");
    group.throughput(Throughput::Elements(values.len() as u64));
    group.bench_function("encode 1M symbols", |b| {
        b.iter(|| encode(items.iter().copied()).unwrap())
    });
    let mut bytes = Vec::new();
    write_words(&mut bytes, &encode(items.iter().copied()).unwrap());
    group.bench_function("decode 1M symbols", |b| {
        b.iter(|| {
            let mut dec = SymbolDecoder::new(&bytes, aecodec::entropy::StreamEnd::Sealed).unwrap();
            values
                .iter()
                .map(|&(index, _)| bank.decode(index, &mut dec).unwrap())
                .sum::<i32>()
        })
    });
    group.finish();
}

fn decode_stages(c: &mut Criterion) {
    let (frames, rate) = frames(10);
    let (pca, store) = pca_spec();
    let pixel = CoderSpec::Pixel { step: 4 };
    let learned = learned_spec();
    let mut group = c.benchmark_group("decode 640x272");
    group.sample_size(10);
    group.throughput(Throughput::Elements(frames.len() as u64));
    for (name, spec) in [
        ("learned q3", &learned),
        ("pca8 step 16", &pca),
        ("pixel step 4", &pixel),
    ] {
        let bytes = aez_bytes(spec, &frames, rate);
        group.bench_function(format!("container only, {name}"), |b| {
            b.iter(|| {
                let mut reader = ContainerReader::new(bytes.as_slice()).unwrap();
                let mut n = 0;
                while reader.next_packet().unwrap().is_some() {
                    n += 1;
                }
                n
            })
        });
        group.bench_function(format!("aez bytes to RGB, {name}"), |b| {
            b.iter(|| {
                let mut reader = ContainerReader::new(bytes.as_slice()).unwrap();
                let mut decoder = FrameDecoder::new(reader.header(), &store).unwrap();
                let mut decoded = CountBytes(0);
                decode_stream(&mut reader, &mut decoder, &mut decoded, |_| {
                    ControlFlow::Continue(())
                })
                .unwrap();
                decoded.0
            })
        });
    }
    group.finish();
}

fn encode_stage(c: &mut Criterion) {
    let (frames, rate) = frames(4);
    let (pca, _) = pca_spec();
    let mut group = c.benchmark_group("encode 640x272");
    group.sample_size(10);
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function("pca8 step 16", |b| {
        b.iter(|| aez_bytes(&pca, &frames, rate).len())
    });
    let learned = learned_spec();
    group.bench_function("learned q3", |b| {
        b.iter(|| aez_bytes(&learned, &frames, rate).len())
    });
    group.finish();
}

fn learned_spec() -> CoderSpec {
    CoderSpec::Learned {
        model: aecodec::registry::builtin::model(3).expect("built-in model"),
        detail_step: None,
        latent_step: aecodec::learned::LatentStep::UNIT,
        policy: aecodec::coders::BasePolicy::default(),
        effort: 0,
    }
}

/// The learned synthesis transform alone, on a latent coded from a real frame.
fn synthesis(c: &mut Criterion) {
    let model = aecodec::registry::builtin::model(3).expect("built-in model");
    let (frames, _) = frames(1);
    let mut group = c.benchmark_group("learned synthesis");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    for (w, h) in [(640u32, 368u32), (1280, 720)] {
        // The sample frame scaled to the size by repeating pixels: real content, real latent.
        let f = &frames[0];
        let mut data = Vec::with_capacity((3 * w * h) as usize);
        for y in 0..h {
            for x in 0..w {
                let p = 3 * ((y * f.height / h) * f.width + x * f.width / w) as usize;
                data.extend_from_slice(&f.data[p..p + 3]);
            }
        }
        let frame = RgbFrame::from_data(w, h, data).unwrap();
        let mut coder = LearnedCoder::new(model.clone(), w, h);
        let coded = coder.encode(&frame, FrameType::Intra).unwrap();
        let latent = coder.parse(FrameType::Intra, &coded.payload).unwrap();
        group.bench_function(format!("{w}x{h}"), |b| {
            b.iter(|| coder.synthesize(&latent).data.len())
        });
    }
    group.finish();
}

criterion_group!(benches, entropy, decode_stages, encode_stage, synthesis);
criterion_main!(benches);
