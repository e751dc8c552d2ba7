//! The browser player in a real browser: Debian's Chromium, headless, driven through
//! chromedriver (WebDriver), playing from a real `aeplay serve` on loopback. Needs `chromium`
//! and `chromium-driver` (scripts/setup installs them) and an aeplay built with the decoder
//! (scripts/web, which scripts/test runs first).

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{encode, s, sample, Server};
use serde_json::{json, Value};

/// A chromedriver process on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    base: String,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while ureq::get(format!("{}/status", driver.base)).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        driver
    }

    /// A headless Chromium session.
    fn session(&self) -> Session {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1100,700"],
            },
        }}});
        let reply = post(&format!("{}/session", self.base), &caps);
        Session {
            base: format!(
                "{}/session/{}",
                self.base,
                reply["sessionId"].as_str().expect("a session id")
            ),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver command's `value`, or the test fails with the driver's error.
fn post(url: &str, body: &Value) -> Value {
    let mut reply = ureq::post(url)
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(body)
        .expect("chromedriver answers");
    let value: Value = reply
        .body_mut()
        .read_json()
        .expect("JSON from chromedriver");
    assert!(reply.status().is_success(), "WebDriver {url}: {value}");
    value["value"].clone()
}

/// One browser window, closed when dropped.
struct Session {
    base: String,
}

impl Session {
    fn goto(&self, url: &str) {
        post(&format!("{}/url", self.base), &json!({ "url": url }));
    }

    fn eval(&self, script: &str) -> Value {
        post(
            &format!("{}/execute/sync", self.base),
            &json!({"script": script, "args": []}),
        )
    }

    /// Waits for playback to end (or fail) and returns its statistics.
    fn stats(&self) -> Value {
        self.until(Duration::from_secs(120), "playback ended", || {
            let stats = self.eval("return window.aeplay && window.aeplay.stats");
            (!stats.is_null()).then_some(stats)
        })
    }

    fn until<T>(&self, limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = check() {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the page shows in its element with this id.
    fn text(&self, id: &str) -> String {
        let script = format!("return document.getElementById('{id}').textContent");
        self.eval(&script).as_str().unwrap_or_default().to_string()
    }

    fn screenshot(&self, path: &Path) {
        let reply = ureq::get(format!("{}/screenshot", self.base))
            .call()
            .expect("screenshot")
            .body_mut()
            .read_json::<Value>()
            .expect("JSON");
        let png = base64::engine::general_purpose::STANDARD
            .decode(reply["value"].as_str().expect("base64 PNG"))
            .expect("valid base64");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = ureq::delete(&self.base).call();
    }
}

/// Whether this machine can run these tests: an `aeplay` with the browser player's decoder
/// (scripts/web), Chromium and chromedriver (scripts/setup installs them all). Where it cannot,
/// the tests say why and pass: the machine lacks the tools, the code is not at fault.
fn browser_available() -> bool {
    let mut missing = Vec::new();
    if !aeplay::web::HAS_DECODER {
        missing.push("the decoder (scripts/web, then build aeplay again)");
    }
    for (tool, what) in [
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
    ] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            missing.push(what);
        }
    }
    if !missing.is_empty() {
        eprintln!(
            "SKIPPED: the browser tests need {} (scripts/setup)",
            missing.join(", ")
        );
    }
    missing.is_empty()
}

/// Where the tests leave what a person may want to look at.
fn artifacts() -> PathBuf {
    common::root().join("target/browser")
}

/// Frames of `file` as the native decoder makes them (built-in models).
fn native_frames(file: &Path) -> Vec<aecodec::RgbFrame> {
    let (header, packets) = common::read_packets(file);
    let store = aecodec::registry::ModelStore::new();
    let mut decoder = aecodec::pipeline::FrameDecoder::new(&header, &store).unwrap();
    packets.iter().map(|p| decoder.decode(p).unwrap()).collect()
}

#[test]
fn a_clip_a_seek_and_a_ladder_play_in_chromium_with_the_native_decoders_pixels() {
    if !browser_available() {
        return;
    }
    let media = tempfile::tempdir().unwrap();
    let clip = media.path().join("carphone.aez");
    // Intra frames at 0, 8 and 16: seeking lands on one.
    encode(
        &sample("carphone_pristine.mp4"),
        &clip,
        &["--frames", "20", "--gop", "8"],
    );
    let native = native_frames(&clip);
    let ladder = media.path().join("ladder");
    common::run_ok(
        "aecodec",
        &[
            "ladder",
            s(&sample("carphone_pristine.mp4")),
            "-o",
            s(&ladder),
            "--renditions",
            "96x80@60k,176x144@200k",
            "--gop",
            "10",
            "--frames",
            "30",
        ],
    );
    let server = Server::start(media.path(), "127.0.0.1:0");
    let driver = Driver::start();
    let browser = driver.session();

    // The catalog lists the clip, linking to the page that plays it.
    browser.goto(&server.url("/"));
    let catalog = browser.until(Duration::from_secs(30), "the catalog", || {
        let t = browser.text("titles");
        t.contains("carphone").then_some(t)
    });
    assert!(catalog.contains("176×144"), "{catalog}");

    let grab = [0usize, 7, 19];
    let page = server.url("/?src=/media/carphone.aez&autoplay=1&chunk=4096&grab=0,7,19");
    browser.goto(&page);
    let stats = browser.stats();
    assert_eq!(stats["errors"], json!([]), "{stats}");
    assert_eq!(stats["frames"], 20, "{stats}");
    // 176×144 at 25 frames/s: every frame is presented, none late.
    assert_eq!(stats["presented"], 20, "{stats}");
    assert_eq!(stats["dropped"], 0, "{stats}");
    assert!(stats["decode_fps"].as_f64().unwrap() > 0.0, "{stats}");
    assert!(stats["first_frame_ms"].as_f64().unwrap() > 0.0, "{stats}");
    let model_bytes = stats["models"][0]["bytes"].as_u64().unwrap();
    assert_eq!(
        stats["model_bytes_fetched"].as_u64(),
        Some(model_bytes),
        "{stats}"
    );
    assert_eq!(
        stats["bytes_fetched"].as_u64(),
        Some(std::fs::metadata(&clip).unwrap().len())
    );
    let shown: Value = serde_json::from_str(&browser.text("stats")).expect("stats as JSON");
    assert_eq!(shown, stats);

    // The frames read back from the canvas are the native decoder's, within one code value.
    for &n in &grab {
        assert_grabbed_matches(&browser, n, &native[n]);
    }
    browser.screenshot(&artifacts().join("playing.png"));

    // Played again, the model comes from the browser's cache, checked against its hash.
    browser.goto(&page);
    let again = browser.stats();
    assert_eq!(again["presented"], 20, "{again}");
    assert_eq!(again["model_bytes_fetched"], 0, "{again}");
    assert_eq!(again["models"][0]["cached"], true, "{again}");

    // Seeking to 0.5 s shows frame 14 first (on screen from 0.467 s at 29.97 frames/s):
    // decoding starts at the intra frame before it, frame 8, found through the file's index.
    browser.goto(&server.url("/?src=/media/carphone.aez&autoplay=1&t=0.5&grab=14"));
    let sought = browser.stats();
    assert_eq!(sought["errors"], json!([]), "{sought}");
    assert_eq!(sought["start_frame"], 14, "{sought}");
    assert_eq!(sought["presented"], 6, "{sought}");
    assert_grabbed_matches(&browser, 14, &native[14]);

    // The ladder plays adaptively: the lowest rendition first, then as the rule decides.
    browser.goto(&server.url("/?src=/media/ladder/manifest.json&autoplay=1"));
    let played = browser.stats();
    assert_eq!(played["errors"], json!([]), "{played}");
    assert_eq!(played["frames"], 30, "{played}");
    assert_eq!(played["presented"], 30, "{played}");
    let segments = played["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 3, "{played}");
    assert_eq!(segments[0]["rendition"], 0, "{played}");
    assert_eq!(segments[0]["reason"], "start", "{played}");
    assert!(
        segments
            .iter()
            .all(|s| s["rendition"].as_u64().unwrap() < 2),
        "{played}"
    );
    browser.screenshot(&artifacts().join("ladder.png"));

    // Without autoplay the Play button starts it, and space pauses, as in aeplay's window:
    // nothing is presented until it is pressed again.
    browser.goto(&server.url("/?src=/media/carphone.aez"));
    browser.eval("document.getElementById('play').click()");
    let press = "document.dispatchEvent(new KeyboardEvent('keydown', {key: ' '})); \
                 return window.aeplay.playback.presented";
    let at_pause = browser.eval(press).as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let held = browser.eval("return [window.aeplay.playback.presented, window.aeplay.stats]");
    assert_eq!(
        held[0].as_u64(),
        Some(at_pause),
        "frames presented while paused"
    );
    assert!(held[1].is_null(), "playback ended while paused");
    browser.eval(press);
    assert_eq!(browser.stats()["presented"], 20);
}

/// Frame `n` as the page read it back from its canvas, against the native decoder's.
fn assert_grabbed_matches(browser: &Session, n: usize, want: &aecodec::RgbFrame) {
    let script = format!("return window.aeplay.grabs[{n}]");
    let rgba = base64::engine::general_purpose::STANDARD
        .decode(browser.eval(&script).as_str().expect("grabbed frame"))
        .unwrap();
    assert_eq!(rgba.len(), want.pixels() * 4, "frame {n}");
    let worst = rgba
        .chunks_exact(4)
        .zip(want.data.chunks_exact(3))
        .flat_map(|(got, want)| (0..3).map(move |c| got[c].abs_diff(want[c])))
        .max()
        .unwrap();
    assert!(worst <= 1, "frame {n} differs by {worst} code values");
    assert!(rgba.chunks_exact(4).all(|px| px[3] == 255));
}

#[test]
fn damage_a_missing_model_and_a_vanished_server_show_errors_on_the_page() {
    if !browser_available() {
        return;
    }
    let media = tempfile::tempdir().unwrap();
    let clip = media.path().join("carphone.aez");
    encode(&sample("carphone_pristine.mp4"), &clip, &["--frames", "30"]);
    // A byte flipped in the middle of a payload: a packet's checksum fails. (The packets that
    // show a hidden frame are empty, without a checksum.)
    let mut bytes = std::fs::read(&clip).unwrap();
    let (_, packets) = common::read_packets(&clip);
    let damaged = (6..packets.len())
        .find(|&i| packets[i].payload.len() > 8)
        .expect("a coded frame after the sixth");
    let mid = &packets[damaged];
    bytes[(mid.offset + mid.head_len + mid.payload.len() as u64 / 2) as usize] ^= 0x5a;
    std::fs::write(media.path().join("damaged.aez"), &bytes).unwrap();
    // Coded with a model this server does not have.
    let pca = common::root().join("samples/models/pca8.model");
    encode(
        &sample("carphone_pristine.mp4"),
        &media.path().join("nomodel.aez"),
        &["--model", s(&pca), "--frames", "2"],
    );
    let mut server = Server::start(media.path(), "127.0.0.1:0");
    let driver = Driver::start();
    let browser = driver.session();

    let error_of = |name: &str| {
        browser.goto(&server.url(&format!("/?src=/media/{name}&autoplay=1")));
        let stats = browser.stats();
        let shown = browser.text("error");
        assert_eq!(stats["errors"][0].as_str(), Some(shown.as_str()), "{stats}");
        (stats, shown)
    };
    let (stats, shown) = error_of("damaged.aez");
    assert!(shown.contains("CRC"), "{shown}");
    assert_eq!(
        stats["presented"], damaged,
        "the frames before the damage play out: {stats}"
    );
    let (_, shown) = error_of("nomodel.aez");
    assert!(shown.contains("404"), "{shown}");
    let (_, shown) = error_of("missing.aez");
    assert!(shown.contains("404"), "{shown}");

    // The server goes away after the first frame: the next range request fails.
    browser.goto(&server.url("/?src=/media/carphone.aez&autoplay=1&chunk=512"));
    browser.until(Duration::from_secs(60), "the first frame", || {
        let n =
            browser.eval("return window.aeplay.playback ? window.aeplay.playback.presented : 0");
        (n.as_u64().unwrap_or(0) > 0).then_some(())
    });
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let stats = browser.stats();
    let shown = browser.text("error");
    assert!(shown.contains("cannot be reached"), "{shown} {stats}");
    // The worker decodes at most 16 frames ahead of the screen, so the rest were never fetched.
    assert!(stats["presented"].as_u64().unwrap() < 30, "{stats}");
    browser.screenshot(&artifacts().join("server-gone.png"));
}
