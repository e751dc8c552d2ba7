//! `aecodec eval` and the PCA baseline, end to end on a real clip.

mod common;

use std::path::Path;

use common::{encode, rgb_frames, run_ok, s, sample};

#[test]
fn pca_at_a_fine_step_is_high_quality_and_its_rate_is_the_file_size() {
    let dir = tempfile::tempdir().unwrap();
    let clip = sample("carphone_pristine.mp4");
    let model = common::root().join("samples/models/pca8.model");
    let aez = dir.path().join("p.aez");
    let mkv = dir.path().join("p.mkv");
    encode(
        &clip,
        &aez,
        &["--model", s(&model), "--step", "1", "--frames", "4"],
    );
    run_ok(
        "aecodec",
        &[
            "decode",
            aez.to_str().unwrap(),
            "-o",
            mkv.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
        ],
    );
    let reference = rgb_frames(&clip, 4);
    let decoded = rgb_frames(&mkv, usize::MAX);
    let mut acc = aecodec::metrics::PsnrAccumulator::default();
    for (r, d) in reference.iter().zip(&decoded) {
        acc.add(r, d);
    }
    assert_eq!(decoded.len(), 4);
    assert!(acc.psnr() > 45.0, "PCA at step 1: {:.2} dB", acc.psnr());
    // The rate eval reports is the size of the file it wrote.
    let info: serde_json::Value = serde_json::from_str(&run_ok(
        "aecodec",
        &["info", aez.to_str().unwrap(), "--json"],
    ))
    .unwrap();
    let file_bytes = std::fs::metadata(&aez).unwrap().len();
    assert_eq!(info["file_bytes"].as_u64().unwrap(), file_bytes);
    let bpp = file_bytes as f64 * 8.0 / (4.0 * 176.0 * 144.0);
    assert!((info["bits_per_pixel"].as_f64().unwrap() - bpp).abs() < 1e-9);
    // Decoding without the model names the model it needs.
    let out = common::run(
        "aecodec",
        &[
            "decode",
            aez.to_str().unwrap(),
            "-o",
            dir.path().join("x.y4m").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains(info["tools"][0]["model_id"].as_str().unwrap()),
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn eval_code_with_reports_the_real_file_size() {
    let dir = tempfile::tempdir().unwrap();
    let (frames, rate) =
        aecodec::eval::reference_frames(&sample("carphone_pristine.mp4"), 3).unwrap();
    let model =
        aecodec::registry::Model::load(&common::root().join("samples/models/pca8.model")).unwrap();
    let aecodec::registry::Model::Pca(pca) = model.clone() else {
        panic!("a PCA model");
    };
    let spec = aecodec::registry::CoderSpec::Pca {
        model: pca,
        components: 192,
        step: 16.0,
    };
    let mut store = aecodec::registry::ModelStore::new();
    store.add(model);
    let path = dir.path().join("x.aez");
    let coded = aecodec::eval::code_with(&spec, &frames, rate, 1, &path, &store).unwrap();
    assert_eq!(coded.bytes, std::fs::metadata(&path).unwrap().len());
    assert_eq!(coded.decoded.len(), 3);
}

#[test]
fn eval_writes_csv_summary_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let clip = sample("carphone_pristine.mp4");
    let models = common::root().join("samples/models/pca8.model");
    let printed = run_ok(
        "aecodec",
        &[
            "eval",
            clip.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--frames",
            "2",
            "--codecs",
            "pca8,pca8-title,jpeg",
            "--pca-model",
            models.to_str().unwrap(),
        ],
    );
    assert!(printed.contains("BD-rate vs jpeg"), "{printed}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("clip,codec,setting,bpp,psnr_rgb,ms_ssim,encode_s,decode_s"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.iter().filter(|r| r[1] == "pca8").count(), 9);
    assert_eq!(rows.iter().filter(|r| r[1] == "jpeg").count(), 7);
    for r in &rows {
        let (bpp, bytes): (f64, f64) = (r[3].parse().unwrap(), r[8].parse().unwrap());
        assert!(
            (bpp - bytes * 8.0 / (2.0 * 176.0 * 144.0)).abs() < 1e-4,
            "{r:?}"
        );
        let ssim: f64 = r[5].parse().unwrap();
        assert!(ssim > 0.0 && ssim <= 1.0, "{r:?}");
    }
    // Finer PCA steps cost more and look better.
    let pca: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r[1] == "pca8")
        .map(|r| (r[3].parse().unwrap(), r[4].parse().unwrap()))
        .collect();
    assert!(
        pca.windows(2).all(|w| w[0].0 > w[1].0 && w[0].1 > w[1].1),
        "{pca:?}"
    );
    assert!(std::fs::read_to_string(out.join("rd.svg"))
        .unwrap()
        .starts_with("<svg"));
    assert!(std::fs::read_to_string(out.join("summary.md"))
        .unwrap()
        .contains("| pca8 |"));
}

#[test]
fn sizes_off_the_block_grid_are_padded_for_coding_and_cropped_back() {
    // A real frame cropped to 101x77: neither a multiple of 8 nor of 16.
    let (frames, rate) =
        aecodec::eval::reference_frames(&sample("carphone_pristine.mp4"), 2).unwrap();
    let odd: Vec<aecodec::RgbFrame> = frames.iter().map(|f| f.cropped(101, 77)).collect();
    let model =
        aecodec::registry::Model::load(&common::root().join("samples/models/pca16.model")).unwrap();
    let aecodec::registry::Model::Pca(pca) = model.clone() else {
        panic!("a PCA model");
    };
    let spec = aecodec::registry::CoderSpec::Pca {
        model: pca,
        components: 768,
        step: 1.0,
    };
    let encoder = aecodec::pipeline::FrameEncoder::new(&spec, 101, 77, rate, 1);
    assert_eq!(
        (encoder.header().coded_width, encoder.header().coded_height),
        (112, 80)
    );
    let mut store = aecodec::registry::ModelStore::new();
    store.add(model);
    let dir = tempfile::tempdir().unwrap();
    let decoded =
        aecodec::eval::code_with(&spec, &odd, rate, 1, &dir.path().join("odd.aez"), &store)
            .unwrap()
            .decoded;
    assert_eq!(decoded.len(), 2);
    for (a, b) in odd.iter().zip(&decoded) {
        assert_eq!((b.width, b.height), (101, 77));
        assert!(aecodec::metrics::psnr(a, b) > 45.0);
    }
}

#[test]
fn predicted_frames_cost_less_decode_identically_and_start_inside_a_group() {
    let dir = tempfile::tempdir().unwrap();
    let clip = sample("carphone_pristine.mp4");
    let model = common::root().join("samples/models/pca8.model");
    let m = s(&model);
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let opts = ["--model", m, "--step", "16", "--frames", "40"];
    encode(
        &clip,
        Path::new(&path("i.aez")),
        &[&opts[..], &["--intra-only"]].concat(),
    );
    encode(
        &clip,
        Path::new(&path("p.aez")),
        &[&opts[..], &["--gop", "10"]].concat(),
    );
    let info = |p: &str| -> serde_json::Value {
        serde_json::from_str(&run_ok("aecodec", &["info", p, "--json"])).unwrap()
    };
    let (intra, predicted) = (info(&path("i.aez")), info(&path("p.aez")));
    assert_eq!(intra["intra_frames"], 40);
    assert_eq!(predicted["intra_frames"], 4);
    assert!(
        predicted["file_bytes"].as_u64().unwrap() * 10 < intra["file_bytes"].as_u64().unwrap() * 9,
        "P-frames saved under 10 %"
    );
    run_ok(
        "aecodec",
        &["decode", &path("i.aez"), "-o", &path("i.y4m"), "--model", m],
    );
    run_ok(
        "aecodec",
        &["decode", &path("p.aez"), "-o", &path("p.y4m"), "--model", m],
    );
    let all = common::read_y4m(&std::fs::read(path("p.y4m")).unwrap()).frames;
    assert!(
        all == common::read_y4m(&std::fs::read(path("i.y4m")).unwrap()).frames,
        "no drift: same frames as intra-only"
    );
    // 0.5 s is frame 14, inside the second GOP: decoding starts at its intra frame, 10, and
    // the frames shown from 14.
    run_ok(
        "aeplay",
        &[
            "play",
            &path("p.aez"),
            "--start",
            "0.5",
            "-o",
            &path("tail.y4m"),
            "--model",
            m,
        ],
    );
    let tail = common::read_y4m(&std::fs::read(path("tail.y4m")).unwrap()).frames;
    assert_eq!(tail.len(), 26);
    assert!(tail == all[14..]);
}
