//! The trainer's burn model and the codec's own inference kernels compute the same transforms,
//! a few real training steps produce a model the codec codes with, fine-tuning and resuming
//! keep their lineage, and widening a trained model keeps what it computed.
//!
//! The suite runs on burn's Flex CPU backend, or on another device named by
//! `AETRAIN_TEST_DEVICE` (`libtorch` with a `--features tch` build: the cross-backend check).
//! It reads real clips, so it needs the `video` feature (FFmpeg).
#![cfg(feature = "video")]

use std::path::PathBuf;
use std::sync::Arc;

use aecodec::coders::FrameCoder;
use aecodec::container::FrameType;
use aecodec::learned::conv::FeatureMap;
use aecodec::learned::{new_info, ArchKind, LearnedArch, LearnedCoder, LearnedModel};
use aetrain::data::FrameSampling;
use aetrain::device::TrainDevice;
use aetrain::model::LearnedNet;
use aetrain::train::{train, OptimizerState, TrainConfig, TrainEvent};
use burn::tensor::{Device, Tensor, TensorData};

/// burn seeds one random generator per device: tests that initialize or train in parallel
/// would draw from each other's sequence, so they take turns.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The device under test: `$AETRAIN_TEST_DEVICE`, else the CPU.
fn test_device() -> TrainDevice {
    std::env::var("AETRAIN_TEST_DEVICE")
        .map(|name| name.parse().expect("AETRAIN_TEST_DEVICE"))
        .unwrap_or_default()
}

fn burn_device() -> Device {
    test_device().burn().expect("the test device is built in")
}

fn clip() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples/carphone_pristine.mp4")
}

/// The values of a burn tensor, in order.
fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .as_slice::<f32>()
        .unwrap()
        .to_vec()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn codec_kernels_match_burn_on_the_same_weights() {
    let _turn = serial();
    let device = burn_device();
    device.seed(5);
    let arch = LearnedArch::DEFAULT;
    let net = LearnedNet::new(&arch, &device);
    let info = new_info(arch, 0.01, 1);
    let model = LearnedModel::from_bytes(&LearnedModel::file_bytes_for(&info, &net.weights(&arch)))
        .unwrap();

    // Synthesis of an integer latent.
    let (c, h, w) = (usize::from(arch.latent_channels), 3, 5);
    let latent: Vec<f32> = (0..c * h * w)
        .map(|i| ((i * 7919) % 11) as f32 - 5.0)
        .collect();
    let burn_out = net.synthesize(Tensor::from_data(
        TensorData::new(latent.clone(), [1, c, h, w]),
        &device,
    ));
    let burn_out = values(burn_out);
    let ours = model.synthesize_map(FeatureMap {
        channels: c,
        height: h,
        width: w,
        data: latent,
    });
    assert_eq!((ours.channels, ours.height, ours.width), (3, 48, 80));
    let scale = burn_out
        .iter()
        .map(|v| v.abs())
        .fold(0.0, f32::max)
        .max(1e-3);
    let diff = max_abs_diff(&burn_out, &ours.data);
    assert!(
        diff <= 1e-4 * scale,
        "synthesis differs by {diff} (scale {scale})"
    );

    // Analysis of an image.
    let (ih, iw) = (48, 80);
    let image: Vec<f32> = (0..3 * ih * iw)
        .map(|i| ((i * 31) % 256) as f32 / 255.0)
        .collect();
    let burn_y = net.analyze(Tensor::from_data(
        TensorData::new(image.clone(), [1, 3, ih, iw]),
        &device,
    ));
    let burn_y = values(burn_y);
    let frame_data: Vec<u8> = (0..ih * iw)
        .flat_map(|p| (0..3).map(move |ch| ((ch * ih * iw + p) * 31 % 256) as u8))
        .collect();
    let frame = aecodec::RgbFrame::from_data(iw as u32, ih as u32, frame_data).unwrap();
    let ours = model.analyze(&frame);
    let scale = burn_y.iter().map(|v| v.abs()).fold(0.0, f32::max).max(1e-3);
    let diff = max_abs_diff(&burn_y, &ours.data);
    assert!(
        diff <= 1e-4 * scale,
        "analysis differs by {diff} (scale {scale})"
    );
}

fn config(steps: u64) -> TrainConfig {
    TrainConfig {
        clips: vec![clip()],
        sampling: FrameSampling {
            every: 10,
            max_frames: 4,
        },
        holdout_every: 4,
        lambda: 0.01,
        quality: 2,
        steps,
        batch: 2,
        crop: 64,
        learning_rate: 1e-3,
        seed: 3,
        validate_every: steps.max(1),
        time_limit: None,
        arch: LearnedArch::DEFAULT,
        device: test_device(),
        start: None,
        resume: false,
        optimizer_state: None,
        pca_step: None,
        hyperprior_only: false,
        command: "test".into(),
    }
}

#[test]
fn a_few_training_steps_make_a_model_the_codec_codes_with() {
    let _turn = serial();
    let mut losses = Vec::new();
    let mut validated = None;
    let bytes = train(&config(4), |e| match e {
        TrainEvent::Step { loss, .. } => losses.push(loss),
        TrainEvent::Validation { bpp, psnr, .. } => validated = Some((bpp, psnr)),
        TrainEvent::PcaStart { .. } => panic!("the pixel-shuffle kind starts at random"),
    })
    .unwrap();
    assert_eq!(losses.len(), 4);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let (bpp, psnr) = validated.expect("the last step validates");
    assert!(bpp > 0.0 && psnr.is_finite(), "{bpp} {psnr}");
    let model = Arc::new(LearnedModel::from_bytes(&bytes).unwrap());
    assert_eq!(model.info.steps, 4);
    assert_eq!(model.info.quality, 2);
    assert!(model.info.training.frames > 0);
    // The checkpoint carries the validation that was reported for it.
    let recorded = model
        .info
        .training
        .validation
        .expect("a validated checkpoint");
    assert_eq!((recorded.bpp, recorded.psnr), (bpp, psnr));
    assert!(recorded.frames > 0);

    // The same seed gives the same starting point (the steps themselves run on a threaded
    // backend whose float sums may differ in their last bits from run to run).
    let init = |seed| {
        let mut c = config(0);
        c.seed = seed;
        LearnedModel::from_bytes(&train(&c, |_| {}).unwrap())
            .unwrap()
            .weights
    };
    assert!(
        init(3) == init(3),
        "the same seed must give the same initial weights"
    );
    assert!(
        init(3) != init(4),
        "another seed must give other initial weights"
    );

    // Resuming adds steps; fine-tuning records the parent.
    let mut resume = config(2);
    resume.start = Some(model.clone());
    resume.resume = true;
    let resumed = LearnedModel::from_bytes(&train(&resume, |_| {}).unwrap()).unwrap();
    assert_eq!(resumed.info.steps, 6);
    let mut tune = config(2);
    tune.start = Some(model.clone());
    let tuned = LearnedModel::from_bytes(&train(&tune, |_| {}).unwrap()).unwrap();
    assert_eq!(tuned.info.parent, Some(model.id.hex()));
    assert_eq!(tuned.info.steps, 2);

    // The trained model codes a real frame, and the decoder parses it.
    let frame = aecodec::video::VideoReader::open(&clip())
        .unwrap()
        .next_frame()
        .unwrap()
        .unwrap();
    let padded = frame.padded(
        frame.width.div_ceil(16) * 16,
        frame.height.div_ceil(16) * 16,
    );
    let mut enc = LearnedCoder::new(model.clone(), padded.width, padded.height);
    let coded = enc.encode(&padded, FrameType::Intra).unwrap();
    let mut dec = LearnedCoder::new(model, padded.width, padded.height);
    let decoded = dec.decode(FrameType::Intra, &coded.payload).unwrap();
    assert_eq!(
        (decoded.width, decoded.height),
        (padded.width, padded.height)
    );
}

#[test]
fn a_latent_from_burn_is_parsed_exactly_by_the_codec() {
    let _turn = serial();
    // Encoder on one backend (burn's Flex), decoder on another (the codec's kernels): parsing
    // depends only on integers, so the decoder recovers exactly the rounded latent.
    let device = burn_device();
    device.seed(11);
    let arch = LearnedArch::DEFAULT;
    let net = LearnedNet::new(&arch, &device);
    let info = new_info(arch, 0.01, 1);
    let model = Arc::new(
        LearnedModel::from_bytes(&LearnedModel::file_bytes_for(&info, &net.weights(&arch)))
            .unwrap(),
    );
    let frame = aecodec::video::VideoReader::open(&clip())
        .unwrap()
        .next_frame()
        .unwrap()
        .unwrap();
    let (w, h) = (
        frame.width as usize / 16 * 16,
        frame.height as usize / 16 * 16,
    );
    let mut image = vec![0f32; 3 * w * h];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                image[(c * h + y) * w + x] =
                    f32::from(frame.data[3 * (y * frame.width as usize + x) + c]) / 255.0;
            }
        }
    }
    // Scale the latent up so that rounding keeps information (an untrained net's is small).
    let y = net
        .analyze(Tensor::from_data(
            TensorData::new(image, [1, 3, h, w]),
            &device,
        ))
        .mul_scalar(40.0);
    let dims = y.dims();
    let latent = FeatureMap {
        channels: dims[1],
        height: dims[2],
        width: dims[3],
        data: values(y),
    };
    let mut encoder = LearnedCoder::new(model.clone(), w as u32, h as u32);
    let coded = encoder.encode_analyzed(&latent, FrameType::Intra).unwrap();
    let mut decoder = LearnedCoder::new(model, w as u32, h as u32);
    let parsed = decoder.parse(FrameType::Intra, &coded.payload).unwrap();
    assert_eq!(Some(parsed.values.as_slice()), encoder.last_latent());
    // The encoder rounds each element to nearest or, where that is cheaper, one step nearer
    // zero (rate–distortion rounding); a misparsed stream would not stay within that.
    let nearest: Vec<i32> = latent.data.iter().map(|v| v.round() as i32).collect();
    assert!(parsed.values.iter().any(|&v| v != 0));
    assert_eq!(parsed.values.len(), nearest.len());
    for (&v, &n) in parsed.values.iter().zip(&nearest) {
        assert!(v == n || v == n - n.signum(), "parsed {v}, nearest {n}");
    }
    let kept = parsed
        .values
        .iter()
        .zip(&nearest)
        .filter(|(v, n)| v == n)
        .count();
    assert!(
        kept * 2 > nearest.len(),
        "only {kept} of {} at nearest",
        nearest.len()
    );
}

#[test]
fn training_lowers_the_loss_on_a_tiny_real_crop_set() {
    let _turn = serial();
    // Four frames of a real clip, 64×64 crops: from the seeded initialization the loss
    // (λ·MSE + rate) must fall clearly within a few dozen steps.
    let mut c = config(30);
    c.validate_every = 1000;
    let mut losses = Vec::new();
    train(&c, |e| {
        if let TrainEvent::Step { loss, .. } = e {
            losses.push(loss)
        }
    })
    .unwrap();
    assert_eq!(losses.len(), 30);
    let mean = |l: &[f64]| l.iter().sum::<f64>() / l.len() as f64;
    let (first, last) = (mean(&losses[..5]), mean(&losses[25..]));
    assert!(
        last < 0.8 * first,
        "loss {first:.3} -> {last:.3}: {losses:?}"
    );
}

#[test]
fn widening_the_latent_keeps_what_the_model_computed() {
    let _turn = serial();
    let device = burn_device();
    device.seed(21);
    let wide = LearnedArch::DEFAULT;
    let narrow = LearnedArch {
        latent_channels: wide.latent_channels / 2,
        ..wide
    };
    let net = LearnedNet::new(&narrow, &device);
    let weights = net.weights(&narrow);
    let widened = LearnedNet::widened_from(&wide, &narrow, &weights, &device).unwrap();
    assert!(LearnedNet::widened_from(&narrow, &wide, &widened.weights(&wide), &device).is_err());

    // The analysis' first channels are the narrow model's latent, unchanged.
    let (h, w) = (32, 48);
    let image: Vec<f32> = (0..3 * h * w)
        .map(|i| ((i * 37) % 256) as f32 / 255.0)
        .collect();
    let analyze = |net: &LearnedNet| {
        net.analyze(Tensor::from_data(
            TensorData::new(image.clone(), [1, 3, h, w]),
            &device,
        ))
    };
    let (m, m_wide) = (
        usize::from(narrow.latent_channels),
        usize::from(wide.latent_channels),
    );
    let y = values(analyze(&net));
    let y_wide = values(analyze(&widened));
    assert_eq!(y_wide.len(), y.len() / m * m_wide);
    let diff = max_abs_diff(&y, &y_wide[..y.len()]);
    assert!(diff <= 1e-5, "the kept latent channels moved by {diff}");

    // A latent whose added channels are zero synthesizes to the narrow model's frame.
    let (lh, lw) = (2, 3);
    let latent: Vec<f32> = (0..m * lh * lw)
        .map(|i| ((i * 13) % 7) as f32 - 3.0)
        .collect();
    let mut padded = latent.clone();
    padded.resize(m_wide * lh * lw, 0.0);
    let x = values(net.synthesize(Tensor::from_data(
        TensorData::new(latent, [1, m, lh, lw]),
        &device,
    )));
    let x_wide = values(widened.synthesize(Tensor::from_data(
        TensorData::new(padded, [1, m_wide, lh, lw]),
        &device,
    )));
    let diff = max_abs_diff(&x, &x_wide);
    assert!(diff <= 1e-5, "the synthesis moved by {diff}");

    // Through training: --init from a narrower model widens it; --resume keeps the arch.
    let model = Arc::new(
        LearnedModel::from_bytes(&LearnedModel::file_bytes_for(
            &new_info(narrow, 0.01, 1),
            &weights,
        ))
        .unwrap(),
    );
    let mut grow = config(1);
    grow.arch = wide;
    grow.start = Some(model.clone());
    let grown = LearnedModel::from_bytes(&train(&grow, |_| {}).unwrap()).unwrap();
    assert_eq!(grown.info.arch, wide);
    assert_eq!(grown.info.parent, Some(model.id.hex()));
    grow.resume = true;
    let refused = train(&grow, |_| {}).expect_err("resume into another arch");
    assert!(refused.to_string().contains("architecture"), "{refused}");
}

/// `aetrain pack`'s corpus holds exactly the crops of the clip's frames, and training reads it
/// as it reads a clip (the FFmpeg-free kit trains from such a file).
#[test]
fn a_packed_corpus_trains_like_its_clip() {
    let _turn = serial();
    let sampling = FrameSampling {
        every: 10,
        max_frames: 4,
    };
    let options = aetrain::pack::PackOptions {
        sampling,
        crop: Some(64),
        crops_per_frame: 2,
        max_bytes: u64::MAX,
        seed: 5,
    };
    let packed = aetrain::pack::pack(&[clip()], &options, "test".into(), |_, _| {}).unwrap();
    assert_eq!(packed.header.pictures.len(), 8);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.aezc");
    let mut bytes = Vec::new();
    aetrain::corpus::write(&mut bytes, &packed.header, &packed.pngs).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    // Every picture is a 64×64 square found somewhere in one of the sampled frames.
    let mut frames = Vec::new();
    aetrain::data::sample_frames(&clip(), sampling, |f| frames.push(f.clone())).unwrap();
    let mut pictures = Vec::new();
    let n = aetrain::data::sample_frames(&path, sampling, |p| pictures.push(p.clone())).unwrap();
    assert_eq!(n, 8);
    for p in &pictures {
        assert_eq!((p.width, p.height), (64, 64));
        let found = frames.iter().any(|f| {
            (0..=f.height as usize - 64).any(|y| {
                (0..=f.width as usize - 64)
                    .any(|x| aetrain::pack::crop_square(f, x, y, 64).data == p.data)
            })
        });
        assert!(found, "a packed picture is no crop of the clip");
    }
    // A byte budget thins the pictures.
    let half = packed.pngs.iter().map(|p| p.len() as u64).sum::<u64>() / 2;
    let thin = aetrain::pack::pack(
        &[clip()],
        &aetrain::pack::PackOptions {
            max_bytes: half,
            ..options
        },
        "test".into(),
        |_, _| {},
    )
    .unwrap();
    let used: u64 = thin.header.pictures.iter().map(|p| p.bytes).sum();
    assert!(
        used <= half && thin.header.pictures.len() < 8,
        "{used} of {half}"
    );
    // Frames smaller than the crop (carphone is 176×144) are kept whole.
    let whole = aetrain::pack::pack(
        &[clip()],
        &aetrain::pack::PackOptions {
            crop: Some(192),
            ..options
        },
        "test".into(),
        |_, _| {},
    )
    .unwrap();
    assert_eq!(whole.kept_whole, 4);
    assert!(whole
        .header
        .pictures
        .iter()
        .all(|p| (p.width, p.height) == (176, 144)));
    // Training takes the corpus where it takes a clip.
    let mut c = config(2);
    c.clips = vec![path];
    let mut validated = false;
    train(&c, |e| {
        validated |= matches!(e, TrainEvent::Validation { .. })
    })
    .unwrap();
    assert!(validated);
}

/// A wall-time limit ends training early, with a validated checkpoint.
#[test]
fn a_time_limit_ends_training_with_a_checkpoint() {
    let _turn = serial();
    let mut c = config(1_000_000);
    c.time_limit = Some(std::time::Duration::from_millis(1));
    c.validate_every = 1_000_000;
    let (mut steps, mut validations) = (0, 0);
    let bytes = train(&c, |e| match e {
        TrainEvent::Step { .. } => steps += 1,
        TrainEvent::Validation { .. } => validations += 1,
        TrainEvent::PcaStart { .. } => {}
    })
    .unwrap();
    assert!((1..1_000).contains(&steps), "{steps} steps");
    assert_eq!(validations, 1);
    assert!(LearnedModel::from_bytes(&bytes).is_ok());
}

/// A small shallow-kind architecture for tests.
const SMALL_SHALLOW: LearnedArch = LearnedArch {
    kind: ArchKind::Shallow,
    analysis_channels: 48,
    latent_channels: 24,
    synthesis_channels: [24, 0, 0],
    hyper_channels: 8,
    side_channels: 4,
    means: false,
};

#[test]
fn a_shallow_model_starts_as_the_linear_autoencoder_of_its_patches() {
    let _turn = serial();
    let mut c = config(0);
    c.arch = SMALL_SHALLOW;
    c.pca_step = Some(4.0);
    let mut started = None;
    let bytes = train(&c, |e| {
        if let TrainEvent::PcaStart { patches, step } = e {
            started = Some((patches, step));
        }
    })
    .unwrap();
    let (patches, step) = started.expect("a fresh shallow model starts from the PCA");
    assert!(patches > 100, "{patches} patches");
    assert_eq!(step, 4.0);
    let model = LearnedModel::from_bytes(&bytes).unwrap();
    assert_eq!(model.info.arch.kind, ArchKind::Shallow);

    // The codec's analysis is the projection on orthonormal directions (divided by the
    // step), and the synthesis of the unrounded latent is the projection back: applying
    // the synthesis to the analysis twice changes nothing (a projection is idempotent), and
    // the reconstruction error is what the discarded directions held (below the frame's own
    // spread).
    let frame = aecodec::video::VideoReader::open(&clip())
        .unwrap()
        .next_frame()
        .unwrap()
        .unwrap()
        .cropped(176, 144);
    let once = model.synthesize_map(model.analyze(&frame));
    let x = aecodec::learned::frame_to_map(&frame);
    let twice = model.synthesize_map(model.analyze(&aecodec::learned::map_to_frame(&once)));
    let twice_diff = once
        .data
        .iter()
        .zip(&twice.data)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / once.data.len() as f32;
    // Only the 8-bit rounding (and clamping) of `once` separates the two.
    assert!(
        twice_diff < 0.003,
        "projection not idempotent: {twice_diff}"
    );
    let mse = |a: &[f32], b: &[f32]| {
        a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum::<f32>() / a.len() as f32
    };
    let mean = x.data.iter().sum::<f32>() / x.data.len() as f32;
    let spread = x.data.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / x.data.len() as f32;
    let error = mse(&once.data, &x.data);
    eprintln!("idempotence {twice_diff}, error {error}, spread {spread}");
    assert!(error < 0.2 * spread, "error {error}, spread {spread}");
    // The latent of a grey patch is centred: the mean patch codes as (nearly) zero.
    let y = model.analyze(&frame);
    let scale = y.data.iter().map(|v| v.abs()).fold(0.0, f32::max);
    assert!(scale > 1.0, "latent in units of the step: max {scale}");

    // The whole coder runs on it: a real frame coded and decoded.
    let model = Arc::new(model);
    let mut enc = LearnedCoder::new(model.clone(), 176, 144);
    let coded = enc.encode(&frame, FrameType::Intra).unwrap();
    let mut dec = LearnedCoder::new(model, 176, 144);
    let decoded = dec.decode(FrameType::Intra, &coded.payload).unwrap();
    let mut acc = aecodec::metrics::PsnrAccumulator::default();
    acc.add(&frame, &decoded);
    assert!(
        acc.psnr() > 25.0,
        "PCA start decodes at {:.2} dB",
        acc.psnr()
    );
}

#[test]
fn a_resumed_run_continues_adam_from_the_saved_state() {
    let _turn = serial();
    let mut first = config(2);
    first.validate_every = 2;
    let mut state = None;
    let bytes = train(&first, |e| {
        if let TrainEvent::Validation { optimizer, .. } = e {
            state = Some(optimizer.to_bytes());
        }
    })
    .unwrap();
    let state = OptimizerState::from_bytes(&state.expect("the last step validates")).unwrap();
    assert_eq!(state.steps, 2);
    assert!(OptimizerState::from_bytes(b"AEADAM0").is_err());
    let model = Arc::new(LearnedModel::from_bytes(&bytes).unwrap());

    // One more step from the checkpoint, with and without Adam's state. Afresh, Adam's first
    // step moves every weight by the learning rate (its moments are that one gradient, so
    // m/√v = ±1); continued, the moments of the earlier steps make most moves smaller.
    let step_from = |optimizer_state| {
        let mut c = config(1);
        c.start = Some(model.clone());
        c.resume = true;
        c.optimizer_state = optimizer_state;
        LearnedModel::from_bytes(&train(&c, |_| {}).unwrap()).unwrap()
    };
    let median_move = |after: &LearnedModel| {
        // config(1) takes its one step at a tenth of the learning rate (the last tenth).
        let lr = config(1).learning_rate as f32 / 10.0;
        let mut moves = Vec::new();
        for (name, _) in aecodec::learned::LearnedWeights::expected_shapes(&model.info.arch) {
            for (a, b) in after
                .weights
                .get(&name)
                .iter()
                .zip(model.weights.get(&name))
            {
                if a != b {
                    moves.push((a - b).abs() / lr);
                }
            }
        }
        moves.sort_by(f32::total_cmp);
        moves[moves.len() / 2]
    };
    let continued = step_from(Some(OptimizerState {
        steps: 2,
        record: state.record.clone(),
    }));
    let restarted = step_from(None);
    assert_eq!(continued.info.steps, 3);
    let (fresh, kept) = (median_move(&restarted), median_move(&continued));
    assert!(
        (0.95..1.05).contains(&fresh),
        "a fresh Adam step moved {fresh} x lr"
    );
    assert!(
        kept < 0.9,
        "the saved state did not reach the optimizer: {kept} x lr"
    );

    // A state saved at another step is refused, not silently applied.
    let mut c = config(1);
    c.start = Some(model);
    c.resume = true;
    c.optimizer_state = Some(OptimizerState {
        steps: 7,
        record: state.record,
    });
    assert!(train(&c, |_| {}).is_err());
}

/// Adding means to a trained model (`aetrain train --init … --means`) keeps every weight it
/// had and starts the means at zero, so the model begins where it was: the same pictures and
/// the same bits in a training pass.
#[test]
fn adding_means_starts_where_the_model_was() {
    let _turn = serial();
    let device = burn_device();
    device.seed(31);
    let with_means = LearnedArch {
        means: true,
        ..SMALL_SHALLOW
    };
    let net = LearnedNet::new(&SMALL_SHALLOW, &device);
    let weights = net.weights(&SMALL_SHALLOW);
    let grown = LearnedNet::widened_from(&with_means, &SMALL_SHALLOW, &weights, &device).unwrap();
    assert!(
        LearnedNet::widened_from(
            &SMALL_SHALLOW,
            &with_means,
            &grown.weights(&with_means),
            &device
        )
        .is_err(),
        "means are not taken away"
    );
    let grown_weights = grown.weights(&with_means);
    // Every weight kept; what was added (the last hyper-synthesis layer's means, the
    // hyper-analysis's weights on the signed latent) is zero.
    let new_shapes: std::collections::BTreeMap<_, _> =
        aecodec::learned::LearnedWeights::expected_shapes(&with_means)
            .into_iter()
            .collect();
    let mut grown_names = Vec::new();
    for (name, shape) in aecodec::learned::LearnedWeights::expected_shapes(&SMALL_SHALLOW) {
        let (old, new) = (weights.get(&name), grown_weights.get(&name));
        let new_shape = &new_shapes[&name];
        if new_shape != &shape {
            grown_names.push(name.clone());
        }
        // Rows of the leading dimension: the old row first, zeros after it.
        let rows = shape[0];
        let (old_row, new_row) = (old.len() / rows, new.len() / new_shape[0]);
        for (r, new_r) in new.chunks(new_row).enumerate() {
            let old_r = old.get(r * old_row..(r + 1) * old_row).unwrap_or(&[]);
            assert_eq!(&new_r[..old_r.len()], old_r, "{name} row {r}");
            assert!(
                new_r[old_r.len()..].iter().all(|&v| v == 0.0),
                "{name}: the means start at zero"
            );
        }
    }
    let hyper_analysis = with_means.hyper_analysis()[0].name.clone();
    let synthesis = with_means.log_scale_layer().name;
    assert_eq!(
        grown_names,
        [
            format!("{hyper_analysis}.weight"),
            format!("{synthesis}.weight"),
            format!("{synthesis}.bias")
        ]
    );
    let (h, w) = (64, 64);
    let image: Vec<f32> = (0..3 * h * w)
        .map(|i| ((i * 53) % 256) as f32 / 255.0)
        .collect();
    let pass = |net: &LearnedNet| {
        device.seed(7);
        let out = net.forward(Tensor::from_data(
            TensorData::new(image.clone(), [1, 3, h, w]),
            &device,
        ));
        (values(out.x_hat), values(out.bits)[0])
    };
    let (x, bits) = pass(&net);
    let (x_grown, bits_grown) = pass(&grown);
    assert!(max_abs_diff(&x, &x_grown) <= 1e-6);
    assert!(
        (bits - bits_grown).abs() <= 1e-3 * bits,
        "{bits} vs {bits_grown}"
    );
}

/// `--hyperprior-only` on means added to a model: real training steps move the hyperprior
/// (the means among it) and leave the analysis and synthesis exactly as they were.
#[test]
fn hyperprior_only_training_keeps_the_transforms() {
    let _turn = serial();
    let device = burn_device();
    device.seed(41);
    let arch = SMALL_SHALLOW;
    let weights = LearnedNet::new(&arch, &device).weights(&arch);
    let start = LearnedModel::file_bytes_for(&new_info(arch, 0.01, 2), &weights);
    let mut c = config(3);
    c.arch = LearnedArch {
        means: true,
        ..arch
    };
    c.start = Some(Arc::new(LearnedModel::from_bytes(&start).unwrap()));
    c.hyperprior_only = true;
    let trained = LearnedModel::from_bytes(&train(&c, |_| {}).unwrap()).unwrap();
    for (name, _) in aecodec::learned::LearnedWeights::expected_shapes(&arch) {
        let (old, new) = (weights.get(&name), trained.weights.get(&name));
        if name.starts_with("g_") {
            assert_eq!(old, new, "{name} moved");
        }
    }
    // The last hyper-synthesis layer trains, its scales and its means (its inputs are never
    // all zero; the first layer's may be, where the side latent rounds to zero).
    let last = c.arch.log_scale_layer().weight_name();
    let (old, new) = (weights.get(&last), trained.weights.get(&last));
    assert_ne!(old, &new[..old.len()], "the scales did not train");
    assert!(
        new[old.len()..].iter().any(|&v| v != 0.0),
        "the means did not train"
    );
}
