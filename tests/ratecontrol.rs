//! Rate control end to end: `aecodec encode --bitrate` on a real clip lands within ±10 % of
//! the asked bitrate (the real file size), above the top level's too, switches between the
//! built-in levels at groups of pictures, and each group decodes to exactly what its level
//! decodes to when the clip is encoded with that level alone.

mod common;

use std::path::Path;

use aecodec::container::FrameType;
use common::{encode, read_packets, read_y4m, run, run_ok, s, sample, stderr};

const FRAMES: &str = "60";
const GOP: &str = "10";

/// Bits per second of an `.aez`: its real size over its duration.
fn bitrate(path: &Path) -> f64 {
    let info: serde_json::Value =
        serde_json::from_str(&run_ok("aecodec", &["info", s(path), "--json"])).unwrap();
    std::fs::metadata(path).unwrap().len() as f64 * 8.0 / info["duration_s"].as_f64().unwrap()
}

fn decoded(aez: &Path) -> Vec<Vec<u8>> {
    let y4m = aez.with_extension("y4m");
    run_ok("aecodec", &["decode", s(aez), "-o", s(&y4m)]);
    read_y4m(&std::fs::read(&y4m).unwrap()).frames
}

/// Encodes `clip` to `aez` with `--bitrate` at `asked` bits/s (in whole kbit/s) and checks
/// that the file lands within 10 % of it (`rates`: the levels', for the message).
fn encode_near(clip: &Path, aez: &Path, asked: f64, rates: &[f64]) {
    let kbps = format!("{:.0}k", asked / 1000.0);
    encode(
        clip,
        aez,
        &["--bitrate", &kbps, "--frames", FRAMES, "--gop", GOP],
    );
    let asked = (asked / 1000.0).round() * 1000.0;
    let got = bitrate(aez);
    assert!(
        (got / asked - 1.0).abs() <= 0.10,
        "asked {kbps}, got {got:.0} bits/s (levels: {rates:?})"
    );
}

#[test]
fn the_bitrate_is_held_and_each_group_decodes_as_its_level_alone() {
    let dir = tempfile::tempdir().unwrap();
    let clip = sample("carphone_pristine.mp4");
    let levels: Vec<_> = (1..=aecodec::registry::builtin::LEVELS)
        .map(|q| {
            let aez = dir.path().join(format!("q{q}.aez"));
            let q = q.to_string();
            encode(&clip, &aez, &["-q", &q, "--frames", FRAMES, "--gop", GOP]);
            aez
        })
        .collect();
    let rates: Vec<f64> = levels.iter().map(|p| bitrate(p)).collect();
    assert!(rates.windows(2).all(|w| w[0] < w[1]), "{rates:?}");
    // Between levels 2 and 3: no single level is within 10 % of it.
    let asked = (rates[1] * rates[2]).sqrt();
    assert!(
        rates.iter().all(|r| (r / asked - 1.0).abs() > 0.1),
        "{rates:?}"
    );

    let aez = dir.path().join("rate.aez");
    encode_near(&clip, &aez, asked, &rates);

    // The tool of each group, from the packets.
    let (header, packets) = read_packets(&aez);
    let levels_count = usize::from(aecodec::registry::builtin::LEVELS);
    let above_top = aecodec::registry::builtin::ABOVE_TOP_DETAIL_STEPS.len();
    assert_eq!(header.tools.len(), levels_count + above_top);
    let mut tools = Vec::new();
    for packet in &packets {
        if tools.len() % 10 == 0 {
            assert_eq!(packet.frame_type, FrameType::Intra);
        }
        tools.push(packet.tool);
    }
    assert_eq!(tools.len(), 60);
    for group in tools.chunks(10) {
        assert!(group.iter().all(|&t| t == group[0]), "{tools:?}");
    }
    let mut used = tools.clone();
    used.dedup();
    assert!(used.len() >= 2, "one level for the whole clip: {tools:?}");

    let mixed = decoded(&aez);
    let alone: Vec<Vec<Vec<u8>>> = levels.iter().map(|p| decoded(p)).collect();
    for (i, frame) in mixed.iter().enumerate() {
        let level = usize::from(tools[i]);
        assert!(
            *frame == alone[level][i],
            "frame {i} differs from level {} alone",
            level + 1
        );
    }

    // Above the top level: rate control goes on to its finer detail steps and lands on the
    // rate instead of stopping at level 7's.
    let high = dir.path().join("high.aez");
    encode_near(&clip, &high, rates[levels_count - 1] * 1.6, &rates);
    let (_, packets) = read_packets(&high);
    assert!(
        packets
            .iter()
            .all(|p| usize::from(p.tool) >= levels_count - 1),
        "a group below the top level"
    );
    assert!(
        packets.iter().any(|p| usize::from(p.tool) >= levels_count),
        "no group above the top level"
    );
}

#[test]
fn bad_rate_requests_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let clip = sample("carphone_pristine.mp4");
    let out = dir.path().join("x.aez");
    let one_model = common::root().join("samples/models/learned-q2.model");
    for (args, expect) in [
        (vec!["--bitrate", "fast"], "is not a rate"),
        (vec!["--bitrate", "500k", "--maxrate", "100k"], "peak rate"),
        (vec!["--bitrate", "500k", "-q", "2"], "cannot be used with"),
        (vec!["--maxrate", "500k"], "--bitrate"),
        (
            vec!["--bitrate", "500k", "--model", s(&one_model)],
            "not one learned model",
        ),
    ] {
        let mut all = vec!["encode", s(&clip), "-o", s(&out)];
        all.extend_from_slice(&args);
        let result = run("aecodec", &all);
        assert!(!result.status.success(), "{args:?} succeeded");
        assert!(
            stderr(&result).contains(expect),
            "{args:?}: {}",
            stderr(&result)
        );
        assert!(!out.exists(), "{args:?} left an output");
    }
}
