//! Adaptive streaming end to end: a real ladder from `aecodec ladder`, served by a real
//! `aeplay serve` on loopback with its rate limit playing the network, and `aeplay play` on
//! the manifest.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use aecodec::container::ContainerReader;
use aecodec::video::RgbScaler;
use common::{bin, run, run_ok, s, sample, Server};
use serde_json::Value;

/// Bitrates asked of the three renditions (lowest first): far enough apart that a limit
/// between two neighbours is clear of both with the rule's 0.8 safety margin.
const RENDITIONS: &str = "176x144@170k,96x80@50k,128x104@90k";

/// One ladder for every test here: carphone's 120 frames (4 s at 29.97 fps) in 12 segments
/// of 10 frames, at 96x80, 128x104 and 176x144. Made once per run of this file.
fn ladder() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("adaptive-ladder");
        let _ = std::fs::remove_dir_all(&dir);
        let clip = sample("carphone_pristine.mp4");
        let printed = run_ok(
            "aecodec",
            &[
                "ladder",
                s(&clip),
                "-o",
                s(&dir),
                "--renditions",
                RENDITIONS,
                "--gop",
                "10",
            ],
        );
        assert_eq!(printed.trim(), s(&dir.join("manifest.json")));
        dir
    })
}

fn manifest() -> Value {
    serde_json::from_str(&std::fs::read_to_string(ladder().join("manifest.json")).unwrap()).unwrap()
}

/// `aeplay play SOURCE ARGS… --stats-json` with one decoding thread (the fastest for frames
/// this small, so the decoder's speed never limits the tests that are not about it), plus
/// `env`; returns the statistics.
fn play(source: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = Command::new(bin("aeplay"))
        .args(["play", source, "--stats-json"])
        .args(args)
        .env("AECODEC_THREADS", "1")
        .envs(env.iter().copied())
        .output()
        .expect("aeplay runs");
    assert!(
        out.status.success(),
        "aeplay play failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stats JSON")
}

/// Held by the tests whose outcome rests on download times (a rate-limited server): run side
/// by side on a small machine, their players and servers would slow each other's requests
/// and move the throughput each one measures.
fn timed_network() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`play`] of the ladder's manifest over loopback, from an `aeplay serve` of the ladder's
/// parent directory started with `serve_args` (its rate limit); returns the statistics.
fn play_served(serve_args: &[&str], play_args: &[&str]) -> Value {
    let _alone = timed_network();
    let server = Server::start_with(ladder().parent().unwrap(), "127.0.0.1:0", serve_args);
    play(
        &server.url("/media/adaptive-ladder/manifest.json"),
        play_args,
        &[],
    )
}

/// The rendition of every segment fetched, in order.
fn fetched(stats: &Value) -> Vec<u64> {
    stats["adaptive"]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rendition"].as_u64().unwrap())
        .collect()
}

/// Frames shown from each rendition.
fn frames_played(stats: &Value) -> Vec<u64> {
    stats["adaptive"]["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["frames_played"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_ladder_has_aligned_segments_at_the_byte_ranges_its_manifest_gives() {
    let manifest = manifest();
    assert_eq!(manifest["format"], "aez-ladder");
    assert_eq!(manifest["frame_count"], 120);
    let times = manifest["segments"].as_array().unwrap();
    assert_eq!(times.len(), 12);
    for (k, t) in times.iter().enumerate() {
        assert_eq!(t["first_frame"], 10 * k as u64);
        assert_eq!(t["frames"], 10);
    }
    let renditions = manifest["renditions"].as_array().unwrap();
    let sizes: Vec<(u64, u64)> = renditions
        .iter()
        .map(|r| (r["width"].as_u64().unwrap(), r["height"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        sizes,
        [(96, 80), (128, 104), (176, 144)],
        "lowest bitrate first"
    );
    for r in renditions {
        let path = ladder().join(r["file"].as_str().unwrap());
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(r["bytes"].as_u64().unwrap(), bytes.len() as u64);
        let segments = r["segments"].as_array().unwrap();
        assert_eq!(segments.len(), 12);
        let mut at = r["header_bytes"].as_u64().unwrap();
        let mut stream = bytes[..at as usize].to_vec();
        for seg in segments {
            let (offset, len) = (
                seg["offset"].as_u64().unwrap(),
                seg["bytes"].as_u64().unwrap(),
            );
            assert_eq!(offset, at, "segments follow each other");
            let flags = bytes[offset as usize + 1];
            assert_eq!(bytes[offset as usize], b'P');
            assert_eq!(flags & 1, 0, "a segment starts with an intra frame");
            assert_eq!(u64::from(flags >> 1), seg["tool"].as_u64().unwrap());
            at += len;
            // Keep the first and the last segment only: they still read front to back.
            if seg == &segments[0] || seg == segments.last().unwrap() {
                stream.extend_from_slice(&bytes[offset as usize..(offset + len) as usize]);
            }
        }
        let mut reader = ContainerReader::new(stream.as_slice()).unwrap();
        let mut packets = 0;
        while let Ok(Some(_)) = reader.next_packet() {
            packets += 1;
        }
        assert_eq!(packets, 20, "{}", path.display());
        let got = bytes.len() as f64 * 8.0 / manifest["duration_s"].as_f64().unwrap();
        let asked = r["target_bitrate"].as_f64().unwrap();
        assert!((got - r["bitrate"].as_f64().unwrap()).abs() < 1.0);
        assert!(
            (got / asked - 1.0).abs() <= 0.1,
            "asked {asked}, got {got:.0}"
        );
    }
}

/// Each rendition's frames as `aecodec decode` gives them (lossless FFV1), scaled to
/// `size` as the player scales them.
fn decoded_at(size: (u32, u32), dir: &Path) -> Vec<Vec<aecodec::RgbFrame>> {
    let manifest = manifest();
    manifest["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let file = r["file"].as_str().unwrap();
            let out = dir.join(format!("{file}.mkv"));
            run_ok(
                "aecodec",
                &["decode", s(&ladder().join(file)), "-o", s(&out)],
            );
            let frames = common::rgb_frames(&out, usize::MAX);
            let from = (frames[0].width, frames[0].height);
            if from == size {
                return frames;
            }
            let mut scaler = RgbScaler::new(from, size).unwrap();
            frames.iter().map(|f| scaler.scale(f).unwrap()).collect()
        })
        .collect()
}

#[test]
fn with_no_limit_it_climbs_to_the_top_and_plays_what_the_decoder_makes() {
    let server = Server::start(ladder().parent().unwrap(), "127.0.0.1:0");
    // The catalog lists the ladder by its directory, with the manifest to play.
    let mut listing = Vec::new();
    aeplay::http::download(&server.url("/catalog.json"), 1 << 20, &mut listing, None).unwrap();
    let catalog: Value = serde_json::from_slice(&listing).unwrap();
    let entry = catalog
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["title"] == "adaptive-ladder")
        .expect("the ladder is in the catalog");
    assert_eq!(entry["url"], "/media/adaptive-ladder/manifest.json");
    assert_eq!(
        (entry["renditions"].as_u64(), entry["frames"].as_u64()),
        (Some(3), Some(120))
    );
    assert_eq!(
        (entry["width"].as_u64(), entry["height"].as_u64()),
        (Some(176), Some(144))
    );
    let out = tempfile::tempdir().unwrap();
    let played = out.path().join("played.mkv");
    let stats = play(
        &server.url("/media/adaptive-ladder/manifest.json"),
        &["-o", s(&played), "--realtime"],
        &[],
    );
    assert_eq!(stats["frames"], 120);
    assert_eq!(stats["stalls"], 0, "{stats}");
    let ttff = stats["time_to_first_frame_ms"].as_f64().unwrap();
    assert!(ttff <= 1000.0, "first frame after {ttff} ms");
    let renditions = fetched(&stats);
    println!("renditions fetched: {renditions:?}");
    assert_eq!(renditions[0], 0, "starts on the lowest");
    assert!(
        renditions
            .windows(2)
            .all(|w| w[1] >= w[0] && w[1] - w[0] <= 1),
        "climbs one step at a time and never falls: {renditions:?}"
    );
    assert!(renditions[6..].iter().all(|&r| r == 2), "{renditions:?}");
    let switches = stats["adaptive"]["switches"].as_array().unwrap();
    assert_eq!(switches.len(), 2);
    assert!(switches.iter().all(|s| s["reason"] == "up"));
    // Every frame is at the presentation size and equals its rendition's own decode,
    // scaled: segment by segment, as the player switched.
    assert_eq!(stats["adaptive"]["presentation_width"], 176);
    let expected = decoded_at((176, 144), out.path());
    let frames = common::rgb_frames(&played, usize::MAX);
    assert_eq!(frames.len(), 120);
    for (i, frame) in frames.iter().enumerate() {
        let r = renditions[i / 10] as usize;
        assert!(
            frame == &expected[r][i],
            "frame {i} differs from rendition {r}'s decode"
        );
    }
}

#[test]
fn with_a_low_limit_it_settles_on_the_lowest_without_stalls() {
    // 80 kbit/s: the lowest rendition (51k) fits, the next (90k) is far from it (stepping up
    // needs 90k / 0.8 = 112k). At 70 kbit/s the first frame could come fast enough, on an idle
    // machine, to drain the buffer while the largest segment (2.8 kB, 0.37 s) arrived.
    let stats = play_served(&["--limit-rate", "10000"], &["--null"]);
    let renditions = fetched(&stats);
    println!("renditions fetched: {renditions:?}");
    assert_eq!(stats["stalls"], 0, "{stats}");
    assert!(renditions[4..].iter().all(|&r| r == 0), "{renditions:?}");
    let frames = frames_played(&stats);
    assert!(frames[0] >= 100, "{frames:?}");
}

#[test]
fn with_a_limit_between_two_renditions_it_plays_the_one_below() {
    // 200 kbit/s: 170k would need 170k / 0.8 = 212k measured, more than the limit lets
    // through, so the top is never chosen; 90k needs 112k. Segments are small, so each
    // request's round trip and response head take their share: the lowest's 2.4-2.8 kB
    // segments measure about 150k, and one of 558 bytes about 85k, which holds the harmonic
    // mean near the threshold while it is among the last three downloads (segments 5-7).
    let stats = play_served(&["--limit-rate", "25000"], &["--null"]);
    let renditions = fetched(&stats);
    println!("renditions fetched: {renditions:?}");
    assert_eq!(stats["stalls"], 0, "{stats}");
    assert!(!renditions.contains(&2), "{renditions:?}");
    // Once that small segment has left the estimate: 128x104 to the end.
    assert!(renditions[8..].iter().all(|&r| r == 1), "{renditions:?}");
    let frames = frames_played(&stats);
    assert!(
        frames[1] >= 40,
        "the last third at least on 128x104: {frames:?}"
    );
}

#[test]
fn when_the_limit_falls_it_steps_down_within_a_few_segments() {
    // No limit, then 70 kbit/s from 1.5 s on; a 1 s buffer keeps fetches close to playback.
    let stats = play_served(
        &["--limit-rate-at", "1.5:8750"],
        &["--null", "--max-buffer", "1"],
    );
    let segments = stats["adaptive"]["segments"].as_array().unwrap();
    let renditions = fetched(&stats);
    println!("renditions fetched: {renditions:?}");
    let before: Vec<u64> = segments
        .iter()
        .filter(|s| s["at_s"].as_f64().unwrap() < 1.4)
        .map(|s| s["rendition"].as_u64().unwrap())
        .collect();
    assert_eq!(
        before.last(),
        Some(&2),
        "on top before the fall: {renditions:?}"
    );
    // The player started after the server, so its 1.5 s are at or after the fall.
    let first_after = segments
        .iter()
        .position(|s| s["at_s"].as_f64().unwrap() >= 1.5)
        .expect("segments fetched after the fall");
    let down = renditions[first_after..]
        .iter()
        .position(|&r| r < 2)
        .expect("steps down");
    assert!(
        down <= 2,
        "stepped down {down} segments after the fall: {renditions:?}"
    );
    assert!(renditions[first_after + down..].iter().all(|&r| r < 2));
    let switches = stats["adaptive"]["switches"].as_array().unwrap();
    assert!(
        switches.iter().any(|s| s["reason"] == "network"),
        "{switches:?}"
    );
}

#[test]
fn a_decoder_too_slow_for_the_top_rendition_steps_down() {
    // The test hook makes synthesis 1.2 µs per pixel slower: 30 ms a frame at 176x144 (too
    // slow for 29.97 fps with the 1.2 margin), 16 ms at 128x104.
    let stats = play(
        s(&ladder().join("manifest.json")),
        &["--null", "--start-rendition", "2", "--max-buffer", "1"],
        &[("AEPLAY_TEST_DECODE_NS_PER_PIXEL", "1200")],
    );
    let renditions = fetched(&stats);
    println!("renditions fetched: {renditions:?}");
    assert_eq!(renditions[0], 2);
    let on_top = renditions.iter().filter(|&&r| r == 2).count();
    assert!(on_top <= 5, "{renditions:?}");
    assert!(*renditions.last().unwrap() < 2);
    let switches = stats["adaptive"]["switches"].as_array().unwrap();
    assert_eq!(switches[0]["reason"], "decoder", "{switches:?}");
    let top_fps = stats["adaptive"]["renditions"][2]["decode_fps"]
        .as_f64()
        .unwrap();
    assert!(top_fps < 36.0, "{top_fps}");
}

#[test]
fn a_pinned_rendition_plays_alone_and_bad_choices_are_refused() {
    let manifest = ladder().join("manifest.json");
    let stats = play(
        s(&manifest),
        &["--null", "--no-pace", "--rendition", "1"],
        &[],
    );
    assert_eq!(frames_played(&stats), [0, 120, 0]);
    assert!(stats["adaptive"]["switches"].as_array().unwrap().is_empty());
    let bad = run(
        "aeplay",
        &["play", s(&manifest), "--null", "--rendition", "3"],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("renditions 0 to 2"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let aez = ladder().join("96x80-50k.aez");
    let not_ladder = run("aeplay", &["play", s(&aez), "--null", "--rendition", "0"]);
    assert!(!not_ladder.status.success());
}

#[test]
fn a_damaged_segment_ends_playback_after_the_frames_before_it_and_a_bad_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(ladder()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    // One byte of the lowest rendition's sixth segment, past its first packet's head.
    let seg = &manifest()["renditions"][0]["segments"][5];
    let at = (seg["offset"].as_u64().unwrap() + 40) as usize;
    let file = dir.path().join("96x80-50k.aez");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[at] ^= 0x55;
    std::fs::write(&file, &bytes).unwrap();
    let manifest = dir.path().join("manifest.json");
    let args = [
        "play",
        s(&manifest),
        "--null",
        "--no-pace",
        "--rendition",
        "0",
    ];
    let out = run("aeplay", &args);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let said = common::stderr(&out);
    assert!(
        said.contains("CRC") && said.contains("stopped after 50 good frames"),
        "{said}"
    );
    let strict = run("aeplay", &[&args[..], &["--strict"]].concat());
    assert_eq!(strict.status.code(), Some(2));
    // A manifest that is not one, or that names a file outside its directory.
    std::fs::write(&manifest, "{\"format\": \"aez-ladder\"}").unwrap();
    let bad = run("aeplay", &["play", s(&manifest), "--null"]);
    assert!(!bad.status.success());
    assert!(
        common::stderr(&bad).contains("not a ladder manifest"),
        "{}",
        common::stderr(&bad)
    );
    let mut m = self::manifest();
    m["renditions"][0]["file"] = "../96x80-50k.aez".into();
    std::fs::write(&manifest, m.to_string()).unwrap();
    let outside = run("aeplay", &["play", s(&manifest), "--null"]);
    assert!(
        common::stderr(&outside).contains("not a plain file name"),
        "{}",
        common::stderr(&outside)
    );
}

/// A server that ignores `Range`: every GET gets the whole file with 200, as some static
/// servers do. Returns its base URL.
fn rangeless_server(dir: &'static Path) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                // Drain the request's header.
                let mut h = String::new();
                while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                    h.clear();
                }
                let path = line
                    .split(' ')
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/');
                let body = std::fs::read(dir.join(path)).unwrap_or_default();
                let mut conn = conn;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            });
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_server_that_ignores_byte_ranges_is_named_as_the_cause() {
    let base = rangeless_server(ladder());
    let out = run(
        "aeplay",
        &["play", &format!("{base}/manifest.json"), "--null"],
    );
    assert!(!out.status.success());
    let said = common::stderr(&out);
    assert!(said.contains("ignores byte ranges"), "{said}");
}

/// A copy of the ladder in `ladder/` of a temporary directory, with `change` made to its
/// manifest; returns the directory and the manifest's path.
fn forged(change: impl FnOnce(&mut Value, &Path)) -> (tempfile::TempDir, PathBuf) {
    let top = tempfile::tempdir().unwrap();
    let dir = top.path().join("ladder");
    std::fs::create_dir(&dir).unwrap();
    for entry in std::fs::read_dir(ladder()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let mut m = manifest();
    change(&mut m, &dir);
    let path = dir.join("manifest.json");
    std::fs::write(&path, m.to_string()).unwrap();
    (top, path)
}

/// `aeplay play` that must end within a minute (a hang is a failure, not a stuck test).
fn run_bounded(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(bin("aeplay"))
        .args(args)
        .env("AECODEC_THREADS", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("aeplay {args:?} still runs after a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn forged_ladders_are_refused_with_a_message_never_a_panic_or_a_hang() {
    // Segment frame counts that wrap a 64-bit sum back to the video's 30 frames.
    let (_dir, wrap) = forged(|m, _| {
        let half = 1u64 << 63;
        m["frame_count"] = 30.into();
        m["segments"] = serde_json::json!([
            {"first_frame": 0, "frames": half, "start_s": 0.0, "duration_s": 1.0},
            {"first_frame": half, "frames": half, "start_s": 1.0, "duration_s": 1.0},
            {"first_frame": 0, "frames": 30, "start_s": 2.0, "duration_s": 1.0},
        ]);
        for r in m["renditions"].as_array_mut().unwrap() {
            let segs = r["segments"].as_array().unwrap()[..3].to_vec();
            r["segments"] = segs.into();
        }
    });
    let out = run_bounded(&["play", s(&wrap), "--null", "--no-pace"]);
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    assert!(
        common::stderr(&out).contains("runs past the video's 30 frames"),
        "{}",
        common::stderr(&out)
    );

    // A rendition file that is a FIFO: opening it would block for ever.
    let (_dir, fifo) = forged(|m, dir| {
        let name = "pipe.aez";
        let made = Command::new("mkfifo").arg(dir.join(name)).status().unwrap();
        assert!(made.success());
        m["renditions"][0]["file"] = name.into();
    });
    let out = run_bounded(&["play", s(&fifo), "--null", "--no-pace"]);
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("not a regular file"),
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn a_segment_its_file_does_not_hold_is_played_from_another_rendition() {
    // The lowest rendition's last segment claims more bytes than the file has (the manifest's
    // own file size forged to match): the player checks the real size, reads nothing of the
    // claim, and takes that segment from another rendition.
    let (dir, path) = forged(|m, dir| {
        let r = &mut m["renditions"][0];
        let last = r["segments"].as_array().unwrap().len() - 1;
        // Past the index and footer too: 1,000 bytes beyond the file's end.
        let on_disk = std::fs::metadata(dir.join(r["file"].as_str().unwrap()))
            .unwrap()
            .len();
        let end = r["segments"][last]["offset"].as_u64().unwrap()
            + r["segments"][last]["bytes"].as_u64().unwrap();
        let extra = on_disk + 1_000 - end;
        let bytes = r["segments"][last]["bytes"].as_u64().unwrap() + extra;
        r["segments"][last]["bytes"] = bytes.into();
        let total = r["bytes"].as_u64().unwrap() + extra;
        r["bytes"] = total.into();
    });
    // Served at 70 kbit/s, where the player keeps to the lowest rendition (as
    // `with_a_low_limit_it_settles_on_the_lowest_without_stalls` shows).
    let _alone = timed_network();
    let server = Server::start_with(dir.path(), "127.0.0.1:0", &["--limit-rate", "8750"]);
    let stats = play(&server.url("/media/ladder/manifest.json"), &["--null"], &[]);
    assert_eq!(stats["frames"], 120, "{stats}");
    let renditions = fetched(&stats);
    assert_eq!(renditions.len(), 12, "{stats}");
    assert_ne!(
        renditions[11], 0,
        "the last segment came from rendition 0: {stats}"
    );
    // Pinned to that rendition, the player has nowhere else to go: it stops with the
    // frames before the segment, saying why.
    let out = run(
        "aeplay",
        &["play", s(&path), "--null", "--no-pace", "--rendition", "0"],
    );
    let said = common::stderr(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("past the file's end") && said.contains("stopped after 110 good frames"),
        "{said}"
    );
}
