//! Helpers for end-to-end tests: the real binaries, real clips, and a y4m reader.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A clip shipped in `samples/`.
pub fn sample(name: &str) -> PathBuf {
    root().join("samples").join(name)
}

/// Path to one of the workspace's binaries, built on first use with the test's profile.
pub fn bin(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        // `--tests` as well: with the test targets' dev-dependencies in the build, features
        // resolve as under `cargo test`, so this reuses what it built instead of rebuilding
        // dependencies (ring, rustls, ureq) with other features (a minute and a half).
        cmd.current_dir(root())
            .args(["build", "--workspace", "--bins", "--tests", "--quiet"]);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building the binaries failed");
    });
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join(name)
}

/// A path as a command-line argument (test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Runs `aecodec encode INPUT -o OUTPUT ARGS…`, asserting success; returns its stdout.
pub fn encode(input: &Path, output: &Path, args: &[&str]) -> String {
    let mut all = vec!["encode", s(input), "-o", s(output)];
    all.extend_from_slice(args);
    run_ok("aecodec", &all)
}

/// Runs a binary with arguments and returns its output.
pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name))
        .args(args)
        .output()
        .expect("binary runs")
}

/// Runs a binary and asserts that it succeeded; returns stdout as text.
pub fn run_ok(name: &str, args: &[&str]) -> String {
    let out = run(name, args);
    assert!(
        out.status.success(),
        "{name} {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A parsed y4m file: size and the raw frames (planes as written).
pub struct Y4m {
    pub width: usize,
    pub height: usize,
    pub frames: Vec<Vec<u8>>,
}

/// Parses a 4:4:4 y4m file, checking every frame's framing.
pub fn read_y4m(bytes: &[u8]) -> Y4m {
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .expect("y4m header line");
    let header = std::str::from_utf8(&bytes[..nl]).unwrap();
    assert!(header.starts_with("YUV4MPEG2 "), "{header}");
    assert!(header.contains(" C444"), "expected 4:4:4: {header}");
    let field = |p: char| -> usize {
        header
            .split(' ')
            .find_map(|t| t.strip_prefix(p))
            .expect("size field")
            .parse()
            .unwrap()
    };
    let (width, height) = (field('W'), field('H'));
    let frame_len = 3 * width * height;
    let mut rest = &bytes[nl + 1..];
    let mut frames = Vec::new();
    while !rest.is_empty() {
        assert!(
            rest.starts_with(b"FRAME\n"),
            "bad frame marker after {} frames",
            frames.len()
        );
        rest = &rest[6..];
        assert!(rest.len() >= frame_len, "short frame {}", frames.len());
        frames.push(rest[..frame_len].to_vec());
        rest = &rest[frame_len..];
    }
    Y4m {
        width,
        height,
        frames,
    }
}

/// Every frame of a video, decoded to RGB by the codec's own reader.
pub fn rgb_frames(path: &Path, max: usize) -> Vec<aecodec::RgbFrame> {
    let mut reader = aecodec::video::VideoReader::open(path).expect("open video");
    let mut frames = Vec::new();
    while frames.len() < max {
        match reader.next_frame().expect("decode video") {
            Some(f) => frames.push(f),
            None => break,
        }
    }
    frames
}

/// An `.aez` file's header and every packet, read front to back.
pub fn read_packets(path: &Path) -> (aecodec::container::Header, Vec<aecodec::container::Packet>) {
    let bytes = std::fs::read(path).expect("read .aez");
    let mut reader = aecodec::container::ContainerReader::new(bytes.as_slice()).expect("header");
    let mut packets = Vec::new();
    while let Some(packet) = reader.next_packet().expect("packet") {
        packets.push(packet);
    }
    (reader.header().clone(), packets)
}

/// A running server process, killed when dropped.
pub struct Server {
    pub child: std::process::Child,
    pub addr: String,
}

impl Server {
    pub fn start(dir: &Path, addr: &str) -> Server {
        Self::start_with(dir, addr, &[])
    }

    pub fn start_with(dir: &Path, addr: &str, extra: &[&str]) -> Server {
        let mut child = std::process::Command::new(bin("aeplay"))
            .args(["serve", dir.to_str().unwrap(), "--addr", addr])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .expect("address line")
            .to_string();
        Server { child, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
