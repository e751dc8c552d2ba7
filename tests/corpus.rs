//! `scripts/corpus` on a tiny subset: a fixture Debian package built here (no network), a
//! rendered source and a shared clip; the clips it writes are read back by the codec.

mod common;

use std::path::Path;
use std::process::Command;

use common::{rgb_frames, s};

/// Writes a PNG of `w`×`h` (an FFmpeg test pattern) to `path`.
fn picture(path: &Path, w: u32, h: u32, pattern: &str) {
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("{pattern}=s={w}x{h}"))
        .args(["-frames:v", "1", s(path)])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A `.deb` named like Debian's `sway-backgrounds` holding two pictures big enough to use,
/// the same one again under another name, a wallpaper in two sizes and an icon too small.
fn fixture_package(dir: &Path) {
    let root = dir.join("pkg");
    let images = root.join("usr/share/backgrounds/sway");
    let sizes = root.join("usr/share/wallpapers/Wide/contents/images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&sizes).unwrap();
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        "Package: sway-backgrounds\nVersion: 9.9-1\nArchitecture: all\n\
         Maintainer: test <t@example.org>\nDescription: fixture\n",
    )
    .unwrap();
    picture(&images.join("a.png"), 1280, 800, "testsrc2");
    picture(&images.join("b.jpg"), 700, 400, "smptehdbars");
    std::fs::copy(images.join("a.png"), images.join("a-copy.png")).unwrap();
    picture(&sizes.join("1920x1080.png"), 1920, 1080, "rgbtestsrc");
    picture(&sizes.join("640x360.png"), 640, 360, "rgbtestsrc");
    picture(&images.join("icon.png"), 64, 64, "testsrc");
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let built = Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group", s(&root)])
        .arg(debs.join("sway-backgrounds_9.9-1_all.deb"))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
}

#[test]
fn the_corpus_script_builds_clips_split_by_source_with_provenance() {
    let dir = tempfile::tempdir().unwrap();
    fixture_package(dir.path());
    let out = dir.path().join("corpus");
    let run = Command::new(common::root().join("scripts/corpus"))
        .args(["--debs", s(&dir.path().join("debs"))])
        .args(["--cache", s(&dir.path().join("cache"))])
        .args(["--out", s(&out)])
        .args(["--shared", s(&common::root().join("samples"))])
        .args(["--sources", "sway-backgrounds,screen-text,bikes.mp4"])
        .args(["--max-per-source", "4"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let provenance = std::fs::read_to_string(out.join("provenance.tsv")).unwrap();
    let rows: Vec<Vec<&str>> = provenance
        .lines()
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(
        rows[0][..8],
        ["source", "package", "version", "licence", "category", "split", "files", "frames"]
    );
    let row = |source: &str| {
        rows.iter()
            .find(|r| r[0] == source)
            .unwrap_or_else(|| panic!("{source}: {provenance}"))
    };
    // Three distinct pictures: the copy and the smaller wallpaper size are left out, the icon
    // is too small. The held-out package gives one 640x360 frame per picture.
    let sway = row("sway-backgrounds");
    assert_eq!(
        (sway[2], sway[5], sway[6], sway[7]),
        ("9.9-1", "test", "3", "3")
    );
    let frames = rgb_frames(&out.join("test/sway-backgrounds.mkv"), 100);
    assert_eq!(frames.len(), 3);
    assert!(frames.iter().all(|f| (f.width, f.height) == (640, 360)));
    // Rendered text pages are training material, 512x384.
    let text = row("screen-text");
    assert_eq!((text[5], text[7]), ("train", "4"));
    let pages = rgb_frames(&out.join("train/screen-text.mkv"), 100);
    assert_eq!(pages.len(), 4);
    assert!(pages.iter().all(|f| (f.width, f.height) == (512, 384)));
    assert_ne!(pages[0], pages[1], "pages differ");
    // The split lists: bikes is held out.
    let test = std::fs::read_to_string(out.join("test.txt")).unwrap();
    let train = std::fs::read_to_string(out.join("train.txt")).unwrap();
    assert!(
        test.contains("bikes.mp4") && test.contains("sway-backgrounds.mkv"),
        "{test}"
    );
    assert!(
        train.contains("screen-text.mkv") && !train.contains("bikes"),
        "{train}"
    );
    // An unknown source is a clear error.
    let bad = Command::new(common::root().join("scripts/corpus"))
        .args(["--out", s(&out), "--sources", "nonesuch"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown sources"));
}
