//! End to end: the real `aecodec` and `aeplay` binaries on real clips.

mod common;

use common::{encode, read_y4m, rgb_frames, run, run_ok, s, sample, stderr};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn encode_info_decode_keeps_frame_count_and_size() {
    let dir = tmp();
    let clip = sample("carphone_pristine.mp4");
    let aez = dir.path().join("c.aez");
    let y4m = dir.path().join("c.y4m");
    let printed = encode(&clip, &aez, &[]);
    assert_eq!(
        printed.trim(),
        s(&aez),
        "encode prints where the output went"
    );
    let info: serde_json::Value =
        serde_json::from_str(&run_ok("aecodec", &["info", s(&aez), "--json"])).unwrap();
    let input = rgb_frames(&clip, usize::MAX);
    assert_eq!(info["frame_count"].as_u64().unwrap() as usize, input.len());
    assert_eq!(info["width"], 176);
    assert_eq!(info["height"], 144);
    assert_eq!(
        info["file_bytes"].as_u64().unwrap(),
        std::fs::metadata(&aez).unwrap().len()
    );
    run_ok("aecodec", &["decode", s(&aez), "-o", s(&y4m)]);
    let decoded = read_y4m(&std::fs::read(&y4m).unwrap());
    assert_eq!((decoded.width, decoded.height), (176, 144));
    assert_eq!(decoded.frames.len(), input.len());
}

#[test]
fn lossless_step_round_trips_exactly_through_ffv1() {
    let dir = tmp();
    let clip = sample("bikes.mp4");
    let aez = dir.path().join("b.aez");
    let mkv = dir.path().join("b.mkv");
    encode(&clip, &aez, &["--pixel", "--step", "1", "--frames", "6"]);
    run_ok("aecodec", &["decode", s(&aez), "-o", s(&mkv)]);
    let original = rgb_frames(&clip, 6);
    let decoded = rgb_frames(&mkv, usize::MAX);
    assert_eq!(decoded.len(), 6);
    assert!(original == decoded, "step 1 through FFV1 must be exact");
}

#[test]
fn mp4_output_has_every_frame() {
    let dir = tmp();
    let aez = dir.path().join("c.aez");
    let mp4 = dir.path().join("c.mp4");
    encode(
        &sample("carphone_pristine.mp4"),
        &aez,
        &["--pixel", "--frames", "9", "--step", "8"],
    );
    run_ok("aecodec", &["decode", s(&aez), "-o", s(&mp4)]);
    let frames = rgb_frames(&mp4, usize::MAX);
    assert_eq!(frames.len(), 9);
    assert_eq!((frames[0].width, frames[0].height), (176, 144));
}

#[test]
fn truncated_file_decodes_every_complete_frame() {
    let dir = tmp();
    let aez = dir.path().join("c.aez");
    encode(
        &sample("carphone_pristine.mp4"),
        &aez,
        &["--frames", "10", "--intra-only"],
    );
    let bytes = std::fs::read(&aez).unwrap();
    // Cut in the middle of the seventh packet.
    let seventh = aecodec::container::ContainerReader::new(&bytes[..])
        .unwrap()
        .nth(6)
        .unwrap()
        .unwrap();
    let cut = (seventh.offset + seventh.stored_len() / 2) as usize;
    let truncated = dir.path().join("t.aez");
    std::fs::write(&truncated, &bytes[..cut]).unwrap();
    let y4m = dir.path().join("t.y4m");
    let out = run("aecodec", &["decode", s(&truncated), "-o", s(&y4m)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));
    let frames = read_y4m(&std::fs::read(&y4m).unwrap()).frames.len();
    assert_eq!(frames, 6, "frames before the cut");
    let strict = run(
        "aecodec",
        &[
            "decode",
            s(&truncated),
            "-o",
            s(&dir.path().join("u.y4m")),
            "--strict",
        ],
    );
    assert_eq!(strict.status.code(), Some(2));
    // The player keeps going to the damage too, and says so.
    let played = run(
        "aeplay",
        &["play", s(&truncated), "--null", "--no-pace", "--stats-json"],
    );
    assert!(played.status.success());
    let stats: serde_json::Value = serde_json::from_slice(&played.stdout).unwrap();
    assert_eq!(stats["frames"].as_u64().unwrap() as usize, frames);
}

#[test]
fn flipped_payload_byte_is_caught_by_crc() {
    let dir = tmp();
    let aez = dir.path().join("c.aez");
    encode(&sample("carphone_pristine.mp4"), &aez, &["--frames", "4"]);
    let mut bytes = std::fs::read(&aez).unwrap();
    // Flip a bit in the middle of the second frame's payload (not in a packet head).
    let mut reader = aecodec::container::ContainerReader::new(&bytes[..]).unwrap();
    reader.next_packet().unwrap().unwrap();
    let packet = reader.next_packet().unwrap().unwrap();
    let at = packet.offset + packet.stored_len() - packet.payload.len() as u64 / 2 - 1;
    bytes[at as usize] ^= 0x40;
    std::fs::write(&aez, &bytes).unwrap();
    let out = run(
        "aecodec",
        &[
            "decode",
            s(&aez),
            "-o",
            s(&dir.path().join("x.y4m")),
            "--strict",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("CRC-32 mismatch"), "{}", stderr(&out));
}

#[test]
fn unreadable_input_reports_ffmpegs_reason_and_writes_nothing() {
    let dir = tmp();
    let junk = dir.path().join("junk.mp4");
    std::fs::write(&junk, b"this is not a video").unwrap();
    let out_path = dir.path().join("j.aez");
    let out = run("aecodec", &["encode", s(&junk), "-o", s(&out_path)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Invalid data found"),
        "{}",
        stderr(&out)
    );
    assert!(!out_path.exists());
    let missing = run(
        "aecodec",
        &["encode", "/nonexistent/clip.mp4", "-o", s(&out_path)],
    );
    assert!(
        stderr(&missing).contains("No such file"),
        "{}",
        stderr(&missing)
    );
    let not_aez = run(
        "aecodec",
        &["decode", s(&junk), "-o", s(&dir.path().join("x.y4m"))],
    );
    assert!(
        stderr(&not_aez).contains("not an .aez file"),
        "{}",
        stderr(&not_aez)
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the junk input remains"
    );
}

#[test]
fn outputs_never_replace_inputs_or_existing_files_without_force() {
    let dir = tmp();
    let clip = dir.path().join("in.mp4");
    std::fs::copy(sample("carphone_pristine.mp4"), &clip).unwrap();
    let before = std::fs::read(&clip).unwrap();
    let same = run("aecodec", &["encode", s(&clip), "-o", s(&clip), "--force"]);
    assert!(
        stderr(&same).contains("is the input file"),
        "{}",
        stderr(&same)
    );
    let existing = dir.path().join("out.aez");
    std::fs::write(&existing, b"keep me").unwrap();
    let refused = run("aecodec", &["encode", s(&clip), "-o", s(&existing)]);
    assert!(
        stderr(&refused).contains("already exists"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    assert_eq!(std::fs::read(&clip).unwrap(), before);
    encode(&clip, &existing, &["--force", "--frames", "2"]);
    assert_ne!(std::fs::read(&existing).unwrap(), b"keep me");
}

#[test]
fn player_frames_are_identical_to_the_decoder_and_stdout_pipes_y4m() {
    let dir = tmp();
    let aez = dir.path().join("c.aez");
    encode(
        &sample("carphone_pristine.mp4"),
        &aez,
        &["--pixel", "--frames", "12", "--step", "3"],
    );
    let decoded = dir.path().join("d.y4m");
    let played = dir.path().join("p.y4m");
    run_ok("aecodec", &["decode", s(&aez), "-o", s(&decoded)]);
    run_ok("aeplay", &["play", s(&aez), "-o", s(&played)]);
    assert_eq!(
        std::fs::read(&decoded).unwrap(),
        std::fs::read(&played).unwrap()
    );
    let piped = run("aecodec", &["decode", s(&aez), "-o", "-"]);
    assert!(piped.status.success());
    assert_eq!(piped.stdout, std::fs::read(&decoded).unwrap());
}

#[test]
fn paced_headless_playback_reports_statistics() {
    let dir = tmp();
    let aez = dir.path().join("c.aez");
    encode(&sample("carphone_pristine.mp4"), &aez, &["--frames", "15"]);
    let stats: serde_json::Value = serde_json::from_str(&run_ok(
        "aeplay",
        &["play", s(&aez), "--null", "--stats-json"],
    ))
    .unwrap();
    assert_eq!(stats["frames"], 15);
    assert_eq!(
        stats["presented"].as_u64().unwrap() + stats["dropped"].as_u64().unwrap(),
        15
    );
    // Paced at 29.97 fps, 15 frames take about half a second of wall time.
    assert!(stats["wall_s"].as_f64().unwrap() >= 14.0 / 29.97, "{stats}");
    assert!(stats["bytes_fetched"].as_u64().unwrap() > 0);
}

/// Starts `name ARGS`, waits until its temporary output exists in `dir`, sends `signal`, and
/// returns its output once it has ended.
fn signalled(
    name: &str,
    args: &[&str],
    dir: &std::path::Path,
    signal: &str,
) -> std::process::Output {
    let child = std::process::Command::new(common::bin(name))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::fs::read_dir(dir).unwrap().count() == 0 {
        assert!(
            started.elapsed().as_secs() < 60,
            "{name} wrote no temporary file"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap()
        .success());
    child.wait_with_output().unwrap()
}

#[test]
fn interrupted_encode_leaves_nothing_behind() {
    // Ctrl-C (SIGINT) and what `timeout`, systemd and Kubernetes send (SIGTERM).
    for signal in ["-INT", "-TERM"] {
        let dir = tmp();
        let out = dir.path().join("big.aez");
        // Lossless pixel coding of the whole clip runs long enough to interrupt.
        let clip = sample("bikes.mp4");
        let args = ["encode", s(&clip), "-o", s(&out), "--pixel", "--step", "1"];
        let output = signalled("aecodec", &args, dir.path(), signal);
        assert!(!output.status.success());
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("interrupted"),
            "{signal}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{signal}: no output and no temporary file"
        );
    }
}

#[test]
fn interrupted_decode_and_playback_leave_nothing_behind() {
    let dir = tmp();
    let aez = dir.path().join("b.aez");
    encode(&sample("bikes.mp4"), &aez, &["--pixel", "--step", "4"]);
    for (name, signal) in [
        ("aecodec", "-TERM"),
        ("aeplay", "-TERM"),
        ("aeplay", "-INT"),
    ] {
        let out_dir = tmp();
        let args: Vec<String> = if name == "aecodec" {
            // 250 frames through x264 take seconds.
            let mp4 = out_dir.path().join("out.mp4");
            ["decode", s(&aez), "-o", s(&mp4)]
                .map(String::from)
                .to_vec()
        } else {
            // Paced at 25 frames/s: 10 seconds.
            let y4m = out_dir.path().join("out.y4m");
            ["play", s(&aez), "-o", s(&y4m), "--realtime"]
                .map(String::from)
                .to_vec()
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = signalled(name, &args, out_dir.path(), signal);
        assert!(!output.status.success(), "{name} {signal}");
        assert_eq!(
            std::fs::read_dir(out_dir.path()).unwrap().count(),
            0,
            "{name} {signal}: no output and no temporary file"
        );
    }
}

#[test]
fn bench_reports_every_stage_as_json() {
    let dir = tmp();
    let aez = dir.path().join("c.aez");
    encode(&sample("carphone_pristine.mp4"), &aez, &["--frames", "8"]);
    let report: serde_json::Value = serde_json::from_str(&run_ok(
        "aecodec",
        &["bench", s(&aez), "--runs", "1", "--json"],
    ))
    .unwrap();
    assert_eq!(report["frames"], 8);
    for field in [
        "container_fps",
        "entropy_fps",
        "synthesis_fps",
        "total_fps",
        "x264_decode_fps",
    ] {
        assert!(report[field].as_f64().unwrap() > 0.0, "{field}: {report}");
    }
    // The whole path is slower than any one of its stages.
    let total = report["total_fps"].as_f64().unwrap();
    assert!(
        total <= report["entropy_fps"].as_f64().unwrap()
            && total <= report["synthesis_fps"].as_f64().unwrap()
    );
}

#[test]
fn every_built_in_quality_decodes_and_costs_more_bits_at_higher_levels() {
    let dir = tmp();
    let clip = sample("carphone_pristine.mp4");
    let input = rgb_frames(&clip, 4);
    let (mut sizes, mut psnrs) = (Vec::new(), Vec::new());
    for q in ["1", "2", "3", "4", "5", "6", "7", "3.5"] {
        let aez = dir.path().join(format!("q{q}.aez"));
        let mkv = dir.path().join(format!("q{q}.mkv"));
        encode(&clip, &aez, &["--quality", q, "--frames", "4"]);
        run_ok("aecodec", &["decode", s(&aez), "-o", s(&mkv)]);
        let decoded = rgb_frames(&mkv, usize::MAX);
        assert_eq!(decoded.len(), 4, "q{q}");
        let mut acc = aecodec::metrics::PsnrAccumulator::default();
        for (r, d) in input.iter().zip(&decoded) {
            acc.add(r, d);
        }
        // A loose floor: the frames are the clip's, not noise or another size.
        assert!(acc.psnr() > 20.0, "q{q}: {:.2} dB", acc.psnr());
        sizes.push(std::fs::metadata(&aez).unwrap().len());
        psnrs.push(acc.psnr());
    }
    // A quality between two levels codes between them.
    let (between, between_psnr) = (sizes.pop().unwrap(), psnrs.pop().unwrap());
    assert!(
        sizes[2] < between && between < sizes[3],
        "{between} in {sizes:?}"
    );
    assert!(
        psnrs[2] < between_psnr && between_psnr < psnrs[3],
        "{between_psnr} in {psnrs:?}"
    );
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{sizes:?}");
    // Each level looks better than the one below (the ladder is not flat).
    assert!(psnrs.windows(2).all(|w| w[0] + 0.3 < w[1]), "{psnrs:?}");
    assert!(!run(
        "aecodec",
        &[
            "encode",
            s(&clip),
            "-o",
            s(&dir.path().join("x.aez")),
            "--quality",
            "8"
        ]
    )
    .status
    .success());
    assert!(!dir.path().join("x.aez").exists());
}

#[test]
fn a_detail_step_alone_codes_over_the_levels_model_and_clashes_with_a_level() {
    let dir = tmp();
    let clip = sample("carphone_pristine.mp4");
    let (coarse, level2) = (dir.path().join("d90.aez"), dir.path().join("q2.aez"));
    encode(&clip, &coarse, &["--detail-step", "90", "--frames", "2"]);
    encode(&clip, &level2, &["--quality", "2", "--frames", "2"]);
    let info = run_ok("aecodec", &["info", s(&coarse)]);
    assert!(info.contains("detail_step: 90.0"), "{info}");
    // Coarser than level 2's step 64: fewer bytes.
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    assert!(size(&coarse) < size(&level2));
    let clash = dir.path().join("clash.aez");
    let out = run(
        "aecodec",
        &[
            "encode",
            s(&clip),
            "-o",
            s(&clash),
            "--detail-step",
            "90",
            "-q",
            "3",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
    assert!(!clash.exists());
}

#[test]
fn a_stream_whose_learned_model_is_not_at_hand_names_the_model_it_needs() {
    let dir = tmp();
    let clip = sample("carphone_pristine.mp4");
    // A per-title model: one fine-tuning step makes a model the binaries do not carry.
    let model = dir.path().join("title.model");
    run_ok(
        "aetrain",
        &[
            "finetune",
            s(&clip),
            "--from",
            s(&sample("models/learned-q1.model")),
            "-o",
            s(&model),
            "--steps",
            "1",
            "--batch",
            "1",
            "--crop",
            "64",
            "--max-frames",
            "4",
        ],
    );
    let aez = dir.path().join("t.aez");
    let y4m = dir.path().join("t.y4m");
    run_ok(
        "aecodec",
        &[
            "encode",
            s(&clip),
            "-o",
            s(&aez),
            "--model",
            s(&model),
            "--frames",
            "2",
        ],
    );
    let info: serde_json::Value =
        serde_json::from_str(&run_ok("aecodec", &["info", s(&aez), "--json"])).unwrap();
    let id = info["tools"][0]["model_id"].as_str().unwrap().to_owned();
    let out = run("aecodec", &["decode", s(&aez), "-o", s(&y4m)]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&id), "{}", stderr(&out));
    assert!(!y4m.exists(), "a failed decode leaves no output");
    // Another model is not accepted in its place.
    let out = run(
        "aecodec",
        &[
            "decode",
            s(&aez),
            "-o",
            s(&y4m),
            "--model",
            s(&sample("models/learned-q2.model")),
        ],
    );
    assert!(!out.status.success(), "{}", stderr(&out));
    run_ok(
        "aecodec",
        &["decode", s(&aez), "-o", s(&y4m), "--model", s(&model)],
    );
    assert_eq!(read_y4m(&std::fs::read(&y4m).unwrap()).frames.len(), 2);
}

#[test]
fn a_forged_short_payload_is_damage_not_a_picture() {
    use aecodec::container::{ContainerWriter, FrameType, Rational};
    let dir = tmp();
    let forged = dir.path().join("forged.aez");
    // A header for a huge learned frame, and a first payload of 37 bytes: 32 side-table
    // indices and an ANS stream that is only a final state, far less than such a frame's
    // symbols need.
    let spec = aecodec::registry::CoderSpec::Learned {
        model: aecodec::registry::builtin::model(3).unwrap(),
        detail_step: None,
        latent_step: aecodec::learned::LatentStep::UNIT,
        policy: aecodec::coders::BasePolicy::default(),
        effort: 0,
    };
    let encoder = aecodec::pipeline::FrameEncoder::new(&spec, 8192, 4320, Rational::new(25, 1), 1);
    let file = std::fs::File::create(&forged).unwrap();
    let mut writer = ContainerWriter::new(file, encoder.header().clone()).unwrap();
    let mut payload = vec![20u8; 32];
    payload.extend_from_slice(&[0x5a, 0xa5, 0x33, 0x01, 0x01]);
    writer
        .write_packet(FrameType::Intra, 0, 0, &payload)
        .unwrap();
    writer.finish().unwrap();
    let out = dir.path().join("out.y4m");
    let decoded = common::run(
        "aecodec",
        &["decode", s(&forged), "-o", s(&out), "--strict"],
    );
    // Its first frame is damaged, so there is nothing to write: an error, and no output.
    assert!(!decoded.status.success(), "{}", common::stderr(&decoded));
    assert!(!out.exists());
    assert!(
        common::stderr(&decoded).contains("ends before its symbols do"),
        "{}",
        common::stderr(&decoded)
    );
}

#[test]
fn variable_frame_rate_input_keeps_its_timing() {
    let dir = tmp();
    // 50 frames: ten 40 ms apart, a one-second pause, then forty more: 3 s in all.
    let vfr = dir.path().join("vfr.mkv");
    let made = std::process::Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=s=64x48:r=25:d=2",
            "-vf",
        ])
        .arg("setpts='if(lt(N,10),N*0.04/TB,(N*0.04+1.0)/TB)'")
        .args(["-fps_mode", "vfr", "-c:v", "libx264", s(&vfr)])
        .status()
        .unwrap();
    assert!(made.success());
    let aez = dir.path().join("vfr.aez");
    encode(&vfr, &aez, &["--pixel", "--step", "8"]);
    let info: serde_json::Value =
        serde_json::from_str(&run_ok("aecodec", &["info", s(&aez), "--json"])).unwrap();
    let frames = info["frame_count"].as_f64().unwrap();
    let rate = info["frame_rate_fps"].as_f64().unwrap();
    let duration = info["duration_s"].as_f64().unwrap();
    assert!(
        (duration - 3.0).abs() <= 1.0 / rate + 1e-9,
        "{frames} frames at {rate}: {duration} s"
    );
    // The pause is held: the last frame before it is repeated for a second.
    let y4m = dir.path().join("vfr.y4m");
    run_ok("aecodec", &["decode", s(&aez), "-o", s(&y4m)]);
    let decoded = common::read_y4m(&std::fs::read(&y4m).unwrap());
    let pause = (0.4 * rate).round() as usize;
    assert_eq!(decoded.frames[pause], decoded.frames[pause + 5]);
}

#[test]
fn an_intact_packet_that_does_not_decode_keeps_the_frames_before_it() {
    use aecodec::container::ContainerWriter;
    let dir = tmp();
    let good = dir.path().join("good.aez");
    common::encode(&sample("bikes.mp4"), &good, &["--frames", "6"]);
    // Frame 3's payload (a bidirectional frame carrying frame 4 hidden) cut to its first bytes,
    // written anew (so its CRC matches).
    let (header, packets) = common::read_packets(&good);
    let forged = dir.path().join("forged.aez");
    let mut writer = ContainerWriter::new(std::fs::File::create(&forged).unwrap(), header).unwrap();
    for (i, p) in packets.iter().enumerate() {
        let payload = if i == 3 {
            &p.payload[..3]
        } else {
            &p.payload[..]
        };
        writer
            .write_packet(p.frame_type, p.tool, p.pts, payload)
            .unwrap();
    }
    writer.finish().unwrap();
    for (strict, code) in [(false, 0), (true, 2)] {
        let out = dir.path().join(format!("out-{strict}.y4m"));
        let mut args = vec!["decode", s(&forged), "-o", s(&out)];
        if strict {
            args.push("--strict");
        }
        let decoded = common::run("aecodec", &args);
        let said = common::stderr(&decoded);
        assert_eq!(decoded.status.code(), Some(code), "{said}");
        assert!(said.contains("frame 3 does not decode"), "{said}");
        assert!(!said.contains("coding frame"), "{said}");
        let y4m = read_y4m(&std::fs::read(&out).unwrap());
        assert_eq!(y4m.frames.len(), 3, "the frames before it are kept");
        // So does the player writing what it plays.
        let played = dir.path().join(format!("played-{strict}.y4m"));
        let mut args = vec!["play", s(&forged), "-o", s(&played), "--no-pace"];
        if strict {
            args.push("--strict");
        }
        let out = common::run("aeplay", &args);
        assert_eq!(out.status.code(), Some(code), "{}", common::stderr(&out));
        let y4m = read_y4m(&std::fs::read(&played).unwrap());
        assert_eq!(y4m.frames.len(), 3);
    }
}

/// Every file of a directory with its bytes, by name.
fn dir_contents(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

#[test]
fn a_ladder_is_replaced_whole_or_not_at_all() {
    let top = tmp();
    let dir = top.path().join("ladder");
    let clip = sample("carphone_pristine.mp4");
    let ladder = |renditions: &str| {
        vec![
            "ladder".to_string(),
            s(&clip).to_string(),
            "-o".into(),
            s(&dir).to_string(),
            "--renditions".into(),
            renditions.into(),
            "--force".into(),
        ]
    };
    let args = ladder("96x80@50k,128x104@90k");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok("aecodec", &args);
    let before = dir_contents(&dir);
    assert_eq!(before.len(), 3, "{:?}", before.keys());

    // Interrupted once the new ladder's first rendition is written (staged beside it).
    let args = ladder("112x96@60k,160x128@120k");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = std::process::Command::new(common::bin("aecodec"))
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let staged_rendition = || {
        std::fs::read_dir(top.path()).unwrap().flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(".ladder.")
                && std::fs::read_dir(e.path()).is_ok_and(|mut files| {
                    files.any(|f| {
                        f.is_ok_and(|f| f.file_name().to_string_lossy().ends_with("k.aez"))
                    })
                })
        })
    };
    while !staged_rendition() {
        assert!(started.elapsed().as_secs() < 120, "no rendition was staged");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("interrupted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir_contents(&dir) == before, "the old ladder is as it was");
    let left: Vec<_> = std::fs::read_dir(top.path()).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "nothing staged is left: {left:?}");

    // Run to the end, the new ladder replaces the old one whole.
    run_ok("aecodec", &args);
    let after = dir_contents(&dir);
    let names: Vec<&str> = after.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["112x96-60k.aez", "160x128-120k.aez", "manifest.json"]
    );

    // A directory holding anything else is not replaced: that file would be lost.
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    let refused = common::run("aecodec", &args);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("notes.txt"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(std::fs::read(dir.join("notes.txt")).unwrap(), b"mine");
}

#[test]
fn info_tells_which_frames_the_learned_picture_carries() {
    let dir = tmp();
    for quality in ["1", "4"] {
        let out = dir.path().join(format!("q{quality}.aez"));
        encode(
            &sample("bikes.mp4"),
            &out,
            &["--frames", "4", "--quality", quality],
        );
        let json: serde_json::Value =
            serde_json::from_str(&run_ok("aecodec", &["info", s(&out), "--json"])).unwrap();
        let stats = &json;
        let layers = &stats["layer_bytes"];
        let sum = ["learned", "detail", "other"]
            .iter()
            .map(|k| layers[k].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(sum, stats["latent_bytes"].as_u64().unwrap(), "{json}");
        let learned = stats["learned_frames"].as_u64().unwrap();
        let moved = stats["motion_frames"].as_u64().unwrap();
        // The level asked for is recorded, apart from the model's training quality.
        assert_eq!(
            stats["level"].as_u64().unwrap().to_string(),
            quality,
            "{json}"
        );
        if quality == "1" {
            // The learned model alone: every frame, every byte.
            assert_eq!(learned, 4, "{json}");
            assert_eq!(layers["detail"], 0, "{json}");
            assert_eq!(moved, 0, "{json}");
        } else {
            // The intra frame decodes through the learned synthesis, and the predicted frames
            // move the picture it made (a learned residual in those where it pays).
            assert_eq!(moved, 3, "{json}");
            assert!((1..=4).contains(&learned), "{json}");
            assert!(layers["learned"].as_u64().unwrap() > 0, "{json}");
            assert!(layers["detail"].as_u64().unwrap() > 0, "{json}");
        }
    }
}

/// Runs a binary with writes limited to `kib` KiB per file and SIGXFSZ ignored, so a write
/// past the limit fails as on a full disk (EFBIG where a full disk gives ENOSPC).
fn run_with_file_limit(name: &str, kib: u32, args: &[&str]) -> std::process::Output {
    let mut script = format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\"");
    for i in 1..=args.len() {
        script.push_str(&format!(" \"${{{i}}}\""));
    }
    std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(common::bin(name))
        .args(args)
        .output()
        .expect("sh runs")
}

#[test]
fn a_write_that_fails_names_the_output_and_leaves_nothing() {
    let dir = tmp();
    let clip = sample("carphone_pristine.mp4");
    let small = dir.path().join("small.aez");
    encode(&clip, &small, &["--frames", "3"]);
    let outputs = [
        (
            dir.path().join("lossless.aez"),
            vec!["encode", s(&clip), "--pixel", "--step", "1", "-o"],
        ),
        (
            dir.path().join("frames.y4m"),
            vec!["decode", s(&small), "-o"],
        ),
        (
            dir.path().join("frames.mkv"),
            vec!["decode", s(&small), "-o"],
        ),
    ];
    for (output, args) in &outputs {
        let mut args = args.clone();
        args.push(s(output));
        let out = run_with_file_limit("aecodec", 8, &args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded past the limit");
        assert!(
            err.contains(&format!("writing {}", output.display())),
            "{args:?}: the error names no output: {err}"
        );
        assert!(
            !err.contains(".partial"),
            "{args:?}: names a temporary file: {err}"
        );
        assert!(!output.exists(), "{args:?} left a partial output");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// `--effort` refines the learned latent of intra frames: the file still decodes with the
/// same decoder, and its bits plus weighted squared error are lower (the trade the encoder
/// chooses by: 0.6 times the model's λ/3 per squared code value at latent step 1).
#[test]
fn encoder_effort_refines_the_learned_picture() {
    let dir = tmp();
    let clip = sample("bikes.mp4");
    let source = rgb_frames(&clip, 2);
    let model = common::root().join("samples/models/learned-shallow.model");
    let cost = |effort: &str| {
        let aez = dir.path().join(format!("e{effort}.aez"));
        let args = [
            "--model",
            s(&model),
            "--step",
            "1",
            "--intra-only",
            "--frames",
            "2",
            "--effort",
            effort,
        ];
        encode(&clip, &aez, &args);
        // FFV1 in RGB: the decoded frames exactly.
        let mkv = dir.path().join(format!("e{effort}.mkv"));
        run_ok("aecodec", &["decode", s(&aez), "-o", s(&mkv)]);
        let decoded = rgb_frames(&mkv, usize::MAX);
        assert_eq!(decoded.len(), 2);
        let sse: u64 = decoded
            .iter()
            .zip(&source)
            .map(|(d, o)| aecodec::metrics::squared_error(d, o).0)
            .sum();
        let bytes = std::fs::read(&aez).unwrap();
        (
            8.0 * bytes.len() as f64 + 0.6 * 0.1 / 3.0 * sse as f64,
            bytes,
        )
    };
    let ((plain, plain_bytes), (refined, refined_bytes)) = (cost("0"), cost("20"));
    assert_ne!(
        plain_bytes, refined_bytes,
        "no frame kept its refined latent"
    );
    assert!(refined < plain, "refined {refined:.0}, plain {plain:.0}");
    let out = dir.path().join("x.aez");
    let refused = run(
        "aecodec",
        &[
            "encode",
            s(&clip),
            "-o",
            s(&out),
            "--pixel",
            "--effort",
            "5",
        ],
    );
    assert!(!refused.status.success());
    let pca = common::root().join("samples/models/pca8.model");
    let refused = run(
        "aecodec",
        &[
            "encode",
            s(&clip),
            "-o",
            s(&out),
            "--model",
            s(&pca),
            "--effort",
            "5",
        ],
    );
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--effort"),
        "{}",
        stderr(&refused)
    );
    assert!(!out.exists());
}

#[test]
fn predicted_frames_go_two_by_two_by_default_and_one_by_one_with_low_delay() {
    let dir = tmp();
    let clip = sample("bikes.mp4");
    let input = rgb_frames(&clip, 8);
    for (name, extra) in [("default", None), ("low-delay", Some("--low-delay"))] {
        let aez = dir.path().join(format!("{name}.aez"));
        let mkv = dir.path().join(format!("{name}.mkv"));
        let mut args = vec!["--frames", "8", "--quality", "3"];
        args.extend(extra);
        encode(&clip, &aez, &args);
        run_ok("aecodec", &["decode", s(&aez), "-o", s(&mkv)]);
        let decoded = rgb_frames(&mkv, usize::MAX);
        assert_eq!(decoded.len(), 8, "{name}");
        for (i, (r, d)) in input.iter().zip(&decoded).enumerate() {
            let p = aecodec::metrics::psnr(r, d);
            assert!(p > 30.0, "{name}, frame {i}: {p:.2} dB");
        }
        // Detail modes after the intra frame: a bidirectional frame (7) carrying the next
        // one hidden, the packet that shows it (8, an empty payload), ...; the last frame
        // alone (6).
        let (_, packets) = common::read_packets(&aez);
        let modes: Vec<u8> = packets[1..]
            .iter()
            .map(|p| match p.payload.is_empty() {
                true => 8,
                false => aecodec::coders::DetailedCoder::split(&p.payload).unwrap().1[0],
            })
            .collect();
        let expected = match extra {
            None => vec![7, 8, 7, 8, 7, 8, 6],
            Some(_) => vec![6; 7],
        };
        assert_eq!(modes, expected, "{name}");
        // A frame between costs less than the anchor it carries.
        for p in packets.iter().filter(|p| p.payload.get(1) == Some(&7)) {
            // The anchor's length, LEB128, after the base length (0) and the mode.
            let ends = 2 + p.payload[2..].iter().position(|b| b & 0x80 == 0).unwrap();
            let anchor = p.payload[2..=ends]
                .iter()
                .rev()
                .fold(0usize, |n, b| (n << 7) | usize::from(b & 0x7f));
            let own = p.payload.len() - (ends + 1) - anchor;
            assert!(own < anchor, "{own} bytes between, {anchor} in the anchor");
        }
    }
}
