//! Streaming end to end: a real `aeplay serve` on a loopback port, real clients.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use common::{bin, encode, run, run_ok, s, sample, Server};

/// A served directory with a PCA-coded clip (and its model) and a pixel-coded clip.
fn media_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let model = common::root().join("samples/models/pca8.model");
    std::fs::create_dir(dir.path().join("models")).unwrap();
    std::fs::copy(&model, dir.path().join("models/pca8.model")).unwrap();
    let clip = sample("carphone_pristine.mp4");
    run_ok(
        "aecodec",
        &[
            "encode",
            s(&clip),
            "-o",
            s(&dir.path().join("car.aez")),
            "--model",
            s(&model),
            "--step",
            "12",
            "--frames",
            "40",
            "--gop",
            "10",
        ],
    );
    encode(
        &clip,
        &dir.path().join("small.aez"),
        &["--pixel", "--step", "8", "--frames", "30"],
    );
    dir
}

/// Status code of a raw request line, bypassing any client-side path normalization.
fn raw_status(addr: &str, target: &str) -> u16 {
    let mut conn = TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut bytes = Vec::new();
    let _ = conn.read_to_end(&mut bytes);
    let response = String::from_utf8_lossy(&bytes);
    response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn url_playback_matches_the_decoder_and_fetches_the_model_once() {
    let media = media_dir();
    let server = Server::start(media.path(), "127.0.0.1:0");
    let out = tempfile::tempdir().unwrap();
    let cache = out.path().join("cache");
    let played = out.path().join("played.y4m");
    let stats: serde_json::Value = serde_json::from_str(&run_ok(
        "aeplay",
        &[
            "play",
            &server.url("/media/car.aez"),
            "-o",
            s(&played),
            "--cache",
            s(&cache),
            "--stats-json",
        ],
    ))
    .unwrap();
    assert_eq!(stats["frames"], 40);
    let model_len = std::fs::metadata(media.path().join("models/pca8.model"))
        .unwrap()
        .len();
    assert_eq!(stats["model_bytes_fetched"].as_u64().unwrap(), model_len);
    assert_eq!(
        stats["bytes_fetched"].as_u64().unwrap(),
        std::fs::metadata(media.path().join("car.aez"))
            .unwrap()
            .len()
    );
    let decoded = out.path().join("decoded.y4m");
    let model = common::root().join("samples/models/pca8.model");
    run_ok(
        "aecodec",
        &[
            "decode",
            s(&media.path().join("car.aez")),
            "-o",
            s(&decoded),
            "--model",
            s(&model),
        ],
    );
    assert_eq!(
        std::fs::read(&played).unwrap(),
        std::fs::read(&decoded).unwrap()
    );
    // The cached model (named by its hash) is reused: nothing fetched the second time.
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    let again: serde_json::Value = serde_json::from_str(&run_ok(
        "aeplay",
        &[
            "play",
            &server.url("/media/car.aez"),
            "--null",
            "--no-pace",
            "--cache",
            s(&cache),
            "--stats-json",
        ],
    ))
    .unwrap();
    assert_eq!(again["model_bytes_fetched"], 0);
    assert_eq!(again["frames"], 40);
    // Seeking: 1.0 s at 29.97 fps is frame 29, the first shown; decoding starts at the intra
    // frame before it, 20 (GOP 10), by URL and from the file alike.
    let all = common::read_y4m(&std::fs::read(&decoded).unwrap()).frames;
    for source in [
        server.url("/media/car.aez"),
        media.path().join("car.aez").display().to_string(),
    ] {
        let tail = out.path().join("tail.y4m");
        run_ok(
            "aeplay",
            &[
                "play",
                &source,
                "--start",
                "1.0",
                "-o",
                s(&tail),
                "--force",
                "--cache",
                s(&cache),
            ],
        );
        let frames = common::read_y4m(&std::fs::read(&tail).unwrap()).frames;
        assert_eq!(frames.len(), 11, "{source}");
        assert!(
            frames == all[29..],
            "{source}: seeked frames differ from the decoder's"
        );
    }
}

/// A rate-controlled stream changes quantizer step between groups of pictures (tools of one
/// PCA model): the player fetches that model once and plays what the decoder decodes.
#[test]
fn a_stream_that_switches_tools_plays_as_it_decodes() {
    let media = tempfile::tempdir().unwrap();
    let model = common::root().join("samples/models/pca8.model");
    std::fs::create_dir(media.path().join("models")).unwrap();
    std::fs::copy(&model, media.path().join("models/pca8.model")).unwrap();
    let aez = media.path().join("rate.aez");
    encode(
        &sample("carphone_pristine.mp4"),
        &aez,
        &[
            "--model",
            s(&model),
            "--bitrate",
            "400k",
            "--frames",
            "40",
            "--gop",
            "10",
        ],
    );
    let (header, packets) = common::read_packets(&aez);
    assert_eq!(header.models().len(), 1);
    let mut tools: Vec<u8> = packets.iter().map(|p| p.tool).collect();
    tools.dedup();
    assert!(tools.len() >= 2, "one step for every group: {tools:?}");

    let server = Server::start(media.path(), "127.0.0.1:0");
    let out = tempfile::tempdir().unwrap();
    let played = out.path().join("played.y4m");
    let stats: serde_json::Value = serde_json::from_str(&run_ok(
        "aeplay",
        &[
            "play",
            &server.url("/media/rate.aez"),
            "-o",
            s(&played),
            "--cache",
            s(&out.path().join("cache")),
            "--stats-json",
        ],
    ))
    .unwrap();
    assert_eq!(stats["frames"], 40);
    assert_eq!(
        stats["model_bytes_fetched"].as_u64().unwrap(),
        std::fs::metadata(&model).unwrap().len()
    );
    let decoded = out.path().join("decoded.y4m");
    run_ok(
        "aecodec",
        &["decode", s(&aez), "-o", s(&decoded), "--model", s(&model)],
    );
    assert_eq!(
        std::fs::read(&played).unwrap(),
        std::fs::read(&decoded).unwrap()
    );
}

#[test]
fn catalog_ranges_and_paths_outside_the_directory() {
    let media = media_dir();
    let server = Server::start(media.path(), "127.0.0.1:0");
    let catalog: serde_json::Value =
        serde_json::from_str(&fetch_text(&server.url("/catalog.json"))).unwrap();
    let titles: Vec<&str> = catalog
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["car", "small"]);
    assert_eq!(catalog[0]["frames"], 40);
    // The server keeps the catalog while its files stay as they are, and makes it anew
    // when one comes, goes or changes.
    let titles_now = || -> Vec<String> {
        let c: serde_json::Value =
            serde_json::from_str(&fetch_text(&server.url("/catalog.json"))).unwrap();
        c.as_array()
            .unwrap()
            .iter()
            .map(|e| e["title"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(titles_now(), ["car", "small"]);
    std::fs::copy(
        media.path().join("small.aez"),
        media.path().join("copy.aez"),
    )
    .unwrap();
    assert_eq!(titles_now(), ["car", "copy", "small"]);
    std::fs::write(media.path().join("copy.aez"), b"not a stream").unwrap();
    assert_eq!(titles_now(), ["car", "small"]);
    std::fs::remove_file(media.path().join("copy.aez")).unwrap();
    assert!(catalog[0]["models"][0]["url"]
        .as_str()
        .unwrap()
        .starts_with("/models/"));
    assert!(catalog[1]["models"][0]["url"].is_null());
    assert_eq!(
        raw_status(
            &server.addr,
            catalog[0]["models"][0]["url"].as_str().unwrap()
        ),
        200
    );
    assert_eq!(
        raw_status(&server.addr, &format!("/models/{}", "0".repeat(64))),
        404
    );
    // A symbolic link inside the directory that points outside it is not followed out.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.aez"), b"secret").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.aez"),
        media.path().join("link.aez"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), media.path().join("linkdir")).unwrap();
    assert_eq!(raw_status(&server.addr, "/media/link.aez"), 404);
    assert_eq!(raw_status(&server.addr, "/media/linkdir/secret.aez"), 404);
    assert_eq!(raw_status(&server.addr, "/media/car.aez"), 200);
    for evil in [
        "/media/../Cargo.toml",
        "/media/..%2f..%2fetc/passwd",
        "/media/%2e%2e/%2e%2e/etc/passwd",
        "/media//etc/passwd",
        "/media/models/../../x",
    ] {
        let status = raw_status(&server.addr, evil);
        assert!((400..500).contains(&status), "{evil}: {status}");
    }
    // Byte ranges: partial content, and unsatisfiable ranges.
    let mut conn = TcpStream::connect(&server.addr).unwrap();
    write!(
        conn,
        "GET /media/car.aez HTTP/1.1\r\nHost: x\r\nRange: bytes=0-3\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 206"), "{text}");
    assert!(text.to_ascii_lowercase().contains("etag:"));
    assert!(response.ends_with(b"AEZV"));
    let mut conn = TcpStream::connect(&server.addr).unwrap();
    write!(conn, "GET /media/car.aez HTTP/1.1\r\nHost: x\r\nRange: bytes=99999999-\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 416"), "{text}");
}

#[test]
fn malformed_and_overlapping_ranges_get_416_and_suffix_ranges_206() {
    let media = media_dir();
    let server = Server::start(media.path(), "127.0.0.1:0");
    let len = std::fs::metadata(media.path().join("car.aez"))
        .unwrap()
        .len();
    let ask = |range: &str| {
        let mut conn = TcpStream::connect(&server.addr).unwrap();
        write!(
            conn,
            "GET /media/car.aez HTTP/1.1\r\nHost: x\r\nRange: {range}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut bytes = Vec::new();
        conn.read_to_end(&mut bytes).unwrap();
        bytes
    };
    for bad in [
        "bytes=abc",
        "bytes=10-5",
        "bytes=0-10,5-15",
        "bytes=0-0,2-2",
    ] {
        let response = ask(bad);
        let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
        assert!(text.starts_with("http/1.1 416"), "{bad}: {text}");
        assert!(
            text.contains(&format!("content-range: bytes */{len}")),
            "{bad}: {text}"
        );
    }
    let tail = ask("bytes=-16");
    assert!(String::from_utf8_lossy(&tail).starts_with("HTTP/1.1 206"));
    let file = std::fs::read(media.path().join("car.aez")).unwrap();
    assert!(
        tail.ends_with(&file[file.len() - 16..]),
        "suffix range returns the footer"
    );
    // Methods other than GET/HEAD are refused.
    let mut conn = TcpStream::connect(&server.addr).unwrap();
    write!(conn, "POST /media/car.aez HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nxxxx").unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 405"), "{text}");
}

#[test]
fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let media = media_dir();
    let server = Server::start_with(
        media.path(),
        "127.0.0.1:0",
        &["--max-connections", "2", "--max-per-address", "3"],
    );
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    // The third request is sent from this thread, so it is on the wire before the slots
    // are freed however late the reader thread gets scheduled on a busy machine.
    let mut third = TcpStream::connect(&server.addr).unwrap();
    write!(
        third,
        "GET /catalog.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let waiting = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = third.read_to_end(&mut bytes);
        (bytes, std::time::Instant::now())
    });
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert!(
        !waiting.is_finished(),
        "a third connection was served while two were held"
    );
    let released = std::time::Instant::now();
    drop(held);
    let (bytes, answered) = waiting.join().unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        answered >= released,
        "the third request was answered before a slot was freed"
    );
}

/// What a test proxy does to the first response it relays.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Flips the byte this many bytes in.
    Corrupt(usize),
    /// Relays this many bytes, then holds the socket open sending nothing.
    Stall(usize),
}

/// A loopback proxy to `target` that applies `fault` to the first response it relays; later
/// connections pass through untouched.
fn faulty_proxy(target: String, fault: Fault) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for (n, client) in listener.incoming().enumerate() {
            let Ok(client) = client else { return };
            let server = TcpStream::connect(&target).unwrap();
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
            });
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let mut relayed = 0usize;
                while let Ok(mut k) = s_read.read(&mut buf) {
                    if k == 0 {
                        break;
                    }
                    match fault {
                        Fault::Corrupt(at) if n == 0 && (relayed..relayed + k).contains(&at) => {
                            buf[at - relayed] ^= 0x55;
                        }
                        Fault::Stall(after) if n == 0 => k = k.min(after - relayed),
                        _ => {}
                    }
                    if c_write.write_all(&buf[..k]).is_err() {
                        break;
                    }
                    relayed += k;
                    if matches!(fault, Fault::Stall(after) if n == 0 && relayed >= after) {
                        std::thread::sleep(std::time::Duration::from_secs(120));
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn bytes_damaged_in_transit_are_fetched_again_never_shown() {
    let media = media_dir();
    let server = Server::start(media.path(), "127.0.0.1:0");
    // 20 kB in: past the HTTP head and the header, inside a packet payload.
    let proxy = faulty_proxy(server.addr.clone(), Fault::Corrupt(20_000));
    let out = tempfile::tempdir().unwrap();
    let played = out.path().join("played.y4m");
    let stats: serde_json::Value = serde_json::from_str(&run_ok(
        "aeplay",
        &[
            "play",
            &format!("http://{proxy}/media/small.aez"),
            "-o",
            s(&played),
            "--stats-json",
            "--strict",
        ],
    ))
    .unwrap();
    assert_eq!(stats["frames"], 30);
    assert!(stats["reconnects"].as_u64().unwrap() >= 1, "{stats}");
    let decoded = out.path().join("decoded.y4m");
    run_ok(
        "aecodec",
        &[
            "decode",
            s(&media.path().join("small.aez")),
            "-o",
            s(&decoded),
        ],
    );
    assert!(std::fs::read(&played).unwrap() == std::fs::read(&decoded).unwrap());
}

fn fetch_text(url: &str) -> String {
    let mut bytes = Vec::new();
    aeplay::http::download(url, 1 << 20, &mut bytes, None).unwrap();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn playback_survives_the_server_being_killed_and_restarted() {
    let media = tempfile::tempdir().unwrap();
    // Large enough that socket buffers cannot hold it: the kill lands mid-stream.
    encode(
        &sample("bikes.mp4"),
        &media.path().join("bikes.aez"),
        &["--pixel", "--step", "2", "--frames", "100"],
    );
    // Loopback sockets can buffer tens of megabytes, so an unpaced server may have handed the
    // whole file to the kernel before the kill; at 3 MB/s at most ~3 MB of 14 have gone.
    let first = Server::start_with(media.path(), "127.0.0.1:0", &["--limit-rate", "3000000"]);
    let addr = first.addr.clone();
    let out = tempfile::tempdir().unwrap();
    let played = out.path().join("played.y4m");
    let client = Command::new(bin("aeplay"))
        .args([
            "play",
            &first.url("/media/bikes.aez"),
            "-o",
            s(&played),
            "--realtime",
            "--stats-json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    drop(first);
    std::thread::sleep(std::time::Duration::from_millis(800));
    let _second = Server::start(media.path(), &addr);
    let result = client.wait_with_output().unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    assert_eq!(stats["frames"], 100);
    assert!(
        stats["reconnects"].as_u64().unwrap() >= 1,
        "the kill did not interrupt the stream: {stats}"
    );
    let decoded = out.path().join("decoded.y4m");
    run_ok(
        "aecodec",
        &[
            "decode",
            s(&media.path().join("bikes.aez")),
            "-o",
            s(&decoded),
        ],
    );
    assert!(
        std::fs::read(&played).unwrap() == std::fs::read(&decoded).unwrap(),
        "resumed stream differs"
    );
}

#[test]
fn fifty_concurrent_clients_stream_without_errors() {
    let media = media_dir();
    let server = Server::start(media.path(), "127.0.0.1:0");
    let url = server.url("/media/small.aez");
    let cache = tempfile::tempdir().unwrap();
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let url = url.clone();
            let cache = cache.path().to_path_buf();
            std::thread::spawn(move || {
                let options = aeplay::PlayOptions {
                    output: aeplay::Output::Null,
                    paced: false,
                    models: vec![],
                    model_cache: cache,
                    start: None,
                    adaptive: Default::default(),
                };
                aeplay::play(&url, &options)
            })
        })
        .collect();
    for c in clients {
        let outcome = c.join().unwrap().expect("client completes");
        assert_eq!(outcome.stats.frames, 30);
        assert!(outcome.damage.is_none());
    }
    // And a missing title is a clear error.
    let missing = run(
        "aeplay",
        &["play", &server.url("/media/nope.aez"), "--null"],
    );
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("HTTP 404"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

/// A raw request from a socket bound to `from` (any address of 127.0.0.0/8 is this machine):
/// the status line, and how long the answer took.
fn status_from(from: &str, server: &str, target: &str) -> (String, std::time::Duration) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &format!("{from}:0")
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let started = std::time::Instant::now();
    socket
        .connect(&server.parse::<std::net::SocketAddr>().unwrap().into())
        .unwrap();
    let mut conn: TcpStream = socket.into();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    // A server that answers before reading (503 when busy) may have closed its side already:
    // what it said is still there to read.
    let _ = write!(
        conn,
        "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut bytes = Vec::new();
    let _ = conn.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    (
        text.lines().next().unwrap_or("").to_string(),
        started.elapsed(),
    )
}

/// Seconds until the server closes `conn` (a read returns nothing or fails), at most `limit`.
fn closed_within(mut conn: TcpStream, limit: f64) -> Option<f64> {
    let started = std::time::Instant::now();
    conn.set_read_timeout(Some(std::time::Duration::from_secs_f64(limit)))
        .unwrap();
    let mut buf = [0u8; 512];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return Some(started.elapsed().as_secs_f64()),
            Ok(_) => continue, // a 408 or 503 before the close
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return None
            }
            Err(_) => return Some(started.elapsed().as_secs_f64()),
        }
    }
}

#[test]
fn idle_and_slow_sockets_do_not_lock_other_clients_out() {
    let media = media_dir();
    let server = Server::start_with(
        media.path(),
        "127.0.0.1:0",
        &[
            "--max-connections",
            "32",
            "--max-per-address",
            "16",
            "--header-timeout",
            "2",
            "--idle-timeout",
            "3",
        ],
    );
    // 40 sockets that send nothing and 4 that send a header a byte at a time, all from
    // 127.0.0.1: more than the whole limit.
    let idle: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    let dribblers: Vec<_> = (0..4)
        .map(|_| {
            let mut conn = TcpStream::connect(&server.addr).unwrap();
            std::thread::spawn(move || {
                for b in b"GET /catalog.json HTTP/1.1\r\nHost: x\r\n"
                    .iter()
                    .cycle()
                    .take(60)
                {
                    if conn.write_all(&[*b]).is_err() {
                        return true; // closed by the server
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                false
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Another client is answered at once, while every socket above is still open.
    let (status, took) = status_from("127.0.0.2", &server.addr, "/catalog.json");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(took.as_secs_f64() < 1.5, "answered after {took:?}");
    // The address over its share is told to come back later, at once.
    let (status, took) = status_from("127.0.0.1", &server.addr, "/catalog.json");
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
    assert!(took.as_secs_f64() < 1.5, "answered after {took:?}");
    // Idle sockets are closed after the idle (or header) timeout; dribblers after the header
    // timeout.
    for conn in idle.into_iter().take(16) {
        let closed = closed_within(conn, 8.0);
        assert!(closed.is_some(), "an idle socket stayed open");
    }
    for d in dribblers {
        assert!(
            d.join().unwrap(),
            "a header sent a byte at a time was never cut off"
        );
    }
    // And the same address is served again once its sockets are gone.
    let (status, _) = status_from("127.0.0.1", &server.addr, "/catalog.json");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
}

#[test]
fn a_zero_connection_limit_is_refused() {
    let media = tempfile::tempdir().unwrap();
    for flag in ["--max-connections", "--max-per-address"] {
        let out = run(
            "aeplay",
            &["serve", s(media.path()), "--addr", "127.0.0.1:0", flag, "0"],
        );
        assert!(!out.status.success(), "{flag} 0 was accepted");
        assert!(
            common::stderr(&out).contains(flag),
            "{}",
            common::stderr(&out)
        );
    }
}

#[test]
fn odd_file_names_are_listed_with_links_that_play() {
    let media = media_dir();
    for name in ["my clip.aez", "what?#%20.aez", "été.aez"] {
        std::fs::copy(media.path().join("small.aez"), media.path().join(name)).unwrap();
    }
    let server = Server::start(media.path(), "127.0.0.1:0");
    let catalog: serde_json::Value =
        serde_json::from_str(&fetch_text(&server.url("/catalog.json"))).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut played = 0;
    for entry in catalog.as_array().unwrap() {
        let url = entry["url"].as_str().unwrap();
        assert!(
            url.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-._~%".contains(&b)),
            "{url}"
        );
        let title = entry["title"].as_str().unwrap();
        if !["my clip", "what?#%20", "été"].contains(&title) {
            continue;
        }
        let stats: serde_json::Value = serde_json::from_str(&run_ok(
            "aeplay",
            &[
                "play",
                &server.url(url),
                "--null",
                "--no-pace",
                "--stats-json",
                "--cache",
                s(cache.path()),
            ],
        ))
        .unwrap();
        assert_eq!(stats["frames"], 30, "{title}");
        played += 1;
    }
    assert_eq!(played, 3);
}

#[test]
fn served_files_symlinks_and_model_urls_agree_with_the_help() {
    let media = media_dir();
    let outside = tempfile::tempdir().unwrap();
    let model = common::root().join("samples/models/pca16.model");
    std::fs::copy(&model, outside.path().join("pca16.model")).unwrap();
    std::fs::write(outside.path().join("far.aez"), b"AEZV").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("pca16.model"),
        media.path().join("m.model"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path().join("far.aez"), media.path().join("far.aez"))
        .unwrap();
    std::fs::write(media.path().join("notes.txt"), b"private").unwrap();
    // A title whose model is built in (pixel) and one whose model the server lacks.
    std::fs::copy(media.path().join("small.aez"), media.path().join("px.aez")).unwrap();
    encode(
        &sample("carphone_pristine.mp4"),
        &media.path().join("nomodel.aez"),
        &["--model", s(&model), "--frames", "2"],
    );
    let server = Server::start(media.path(), "127.0.0.1:0");
    let id16 = hex_sha256(&std::fs::read(&model).unwrap());
    assert_eq!(raw_status(&server.addr, &format!("/models/{id16}")), 404);
    assert_eq!(raw_status(&server.addr, "/media/notes.txt"), 404);
    assert_eq!(raw_status(&server.addr, "/media/far.aez"), 404);
    let catalog: serde_json::Value =
        serde_json::from_str(&fetch_text(&server.url("/catalog.json"))).unwrap();
    let entries = catalog.as_array().unwrap();
    let titles: Vec<&str> = entries
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert!(!titles.contains(&"far"), "{titles:?}");
    for e in entries {
        match e["models"][0]["url"].as_str() {
            Some(url) => assert_eq!(raw_status(&server.addr, url), 200, "{url}"),
            None => assert!(
                ["small", "px", "nomodel"].contains(&e["title"].as_str().unwrap()),
                "{e}"
            ),
        }
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    aecodec::model_file::ModelId::of_bytes(bytes).hex()
}

/// The whole response to a raw HTTP request, headers and body.
fn raw_response(addr: &str, request: &str) -> String {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    let _ = conn.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).to_ascii_lowercase()
}

#[test]
fn pages_of_other_sites_may_read_streams_by_range() {
    let media = media_dir();
    let server = Server::start(media.path(), "127.0.0.1:0");
    let get = raw_response(
        &server.addr,
        "GET /media/car.aez HTTP/1.1\r\nHost: x\r\nOrigin: http://elsewhere.test\r\n\
         Range: bytes=0-9\r\nConnection: close\r\n\r\n",
    );
    assert!(get.starts_with("http/1.1 206"), "{get}");
    assert!(get.contains("access-control-allow-origin: *"), "{get}");
    let exposed = get
        .lines()
        .find(|l| l.starts_with("access-control-expose-headers:"))
        .unwrap_or_default();
    assert!(exposed.contains("content-range"), "{get}");
    // The preflight a page's range request may send first.
    let preflight = raw_response(
        &server.addr,
        "OPTIONS /media/car.aez HTTP/1.1\r\nHost: x\r\nOrigin: http://elsewhere.test\r\n\
         Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: range\r\n\
         Connection: close\r\n\r\n",
    );
    assert!(preflight.starts_with("http/1.1 200"), "{preflight}");
    assert!(
        preflight.contains("access-control-allow-origin: *"),
        "{preflight}"
    );
    let allowed = preflight
        .lines()
        .find(|l| l.starts_with("access-control-allow-headers:"))
        .unwrap_or_default();
    assert!(allowed.contains("range"), "{preflight}");
}

#[test]
fn if_range_and_long_suffix_ranges_follow_rfc_9110() {
    let media = media_dir();
    let server = Server::start(media.path(), "127.0.0.1:0");
    let file = std::fs::read(media.path().join("car.aez")).unwrap();
    let ask = |headers: &str| {
        let mut conn = TcpStream::connect(&server.addr).unwrap();
        write!(
            conn,
            "GET /media/car.aez HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut bytes = Vec::new();
        conn.read_to_end(&mut bytes).unwrap();
        let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&bytes[..head_end]).to_ascii_lowercase();
        (head, bytes[head_end..].to_vec())
    };
    let (head, _) = ask("");
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an etag")
        .trim()
        .to_string();
    let (head, body) = ask(&format!("Range: bytes=4-9\r\nIf-Range: {etag}\r\n"));
    assert!(head.starts_with("http/1.1 206"), "{head}");
    assert_eq!(body, file[4..10]);
    for stale in [
        "\"someone-else\"",
        "W/\"weak\"",
        "Tue, 01 Jan 2002 00:00:00 GMT",
    ] {
        let (head, body) = ask(&format!("Range: bytes=4-9\r\nIf-Range: {stale}\r\n"));
        assert!(head.starts_with("http/1.1 200"), "{stale}: {head}");
        assert_eq!(body, file, "{stale}");
    }
    let (head, body) = ask(&format!("Range: bytes=-{}\r\n", file.len() + 1000));
    assert!(head.starts_with("http/1.1 206"), "{head}");
    assert_eq!(body, file);
}

#[test]
fn a_stalled_server_counts_as_a_dropped_connection() {
    let media = media_dir();
    let server = Server::start(media.path(), "127.0.0.1:0");
    // The first connection carries the stream (the file is small enough that the player opens
    // it once); it stalls 20 kB in.
    let proxy = faulty_proxy(server.addr.clone(), Fault::Stall(20_000));
    let started = std::time::Instant::now();
    let stats: serde_json::Value = serde_json::from_str(&run_ok(
        "aeplay",
        &[
            "play",
            &format!("http://{proxy}/media/small.aez"),
            "--null",
            "--no-pace",
            "--stats-json",
            "--strict",
            "--stall-timeout",
            "1",
        ],
    ))
    .unwrap();
    assert_eq!(stats["frames"], 30);
    assert!(stats["reconnects"].as_u64().unwrap() >= 1, "{stats}");
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
}

#[test]
fn a_server_that_always_stalls_is_given_up_on_with_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = [0u8; 2048];
            let n = conn.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
            let from: u64 = request
                .split("range: bytes=")
                .nth(1)
                .and_then(|r| r.split('-').next())
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            // The headers, then four bytes at most, then nothing more, ever.
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-99999/100000\r\n\
                 Content-Length: {}\r\nETag: \"x\"\r\n\r\n",
                100_000 - from
            );
            let _ = conn.write_all(head.as_bytes());
            if from == 0 {
                let _ = conn.write_all(b"AEZV");
            }
            held.push(conn);
        }
    });
    let patience = aeplay::http::Patience {
        stall: std::time::Duration::from_millis(300),
        attempts: 3,
    };
    let started = std::time::Instant::now();
    let mut stream = aeplay::http::HttpStream::open_with(
        &format!("http://{addr}/media/x.aez"),
        0,
        Default::default(),
        Default::default(),
        patience,
    )
    .unwrap();
    let mut bytes = Vec::new();
    let err = stream.read_to_end(&mut bytes).unwrap_err();
    assert!(
        err.to_string().contains("gave up after 3 attempts"),
        "{err}"
    );
    assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
}

#[test]
fn an_oversized_download_is_refused_before_it_is_held() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { return };
            let mut buf = [0u8; 2048];
            let _ = conn.read(&mut buf);
            if n == 0 {
                // Announces 1 GiB.
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n");
                let _ = conn.write_all(&[0u8; 4096]);
            } else {
                // Announces nothing and sends more than asked for.
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                for _ in 0..64 {
                    if conn.write_all(&[7u8; 4096]).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let url = format!("http://{addr}/models/x");
    let mut sink = Vec::new();
    let err = aeplay::http::download(&url, 10_000, &mut sink, None).unwrap_err();
    assert!(
        matches!(err, aeplay::http::HttpError::TooLarge { .. }),
        "{err}"
    );
    assert!(
        sink.is_empty(),
        "nothing is written for a body announced too large"
    );
    let err = aeplay::http::download(&url, 10_000, &mut sink, None).unwrap_err();
    assert!(
        matches!(err, aeplay::http::HttpError::TooLarge { .. }),
        "{err}"
    );
    assert!(sink.len() <= 10_000, "{} bytes taken", sink.len());
}

/// A server on loopback that answers every request with a 200 of `len` bytes (and a
/// `Content-Range` for ranges), sending one byte every `gap`: never slow enough for the
/// stall timeout, far too slow to finish.
fn trickling_server(len: usize, gap: std::time::Duration) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                let n = conn.read(&mut buf).unwrap_or(0);
                let ranged = String::from_utf8_lossy(&buf[..n]).contains("Range:");
                let head = if ranged {
                    format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {len}\r\n\
                         Content-Range: bytes 0-{}/{len}\r\n\r\n",
                        len - 1
                    )
                } else {
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n")
                };
                let _ = conn.write_all(head.as_bytes());
                for _ in 0..len {
                    std::thread::sleep(gap);
                    if conn.write_all(b"x").is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}/manifest.json")
}

#[test]
fn a_server_that_trickles_meets_the_fetchs_deadline() {
    use std::io::Read;
    use std::time::{Duration, Instant};
    let url = trickling_server(200, Duration::from_millis(200));
    // 200 bytes at 5 a second would take 40 s; the deadline is 1 s.
    let started = Instant::now();
    let mut sink = Vec::new();
    let deadline = Some(Instant::now() + Duration::from_secs(1));
    let err = aeplay::http::download(&url, 10_000, &mut sink, deadline).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    let started = Instant::now();
    let stream =
        aeplay::http::HttpStream::open_range(&url, 0..200, Default::default(), Default::default())
            .unwrap()
            .with_deadline(Instant::now() + Duration::from_secs(1));
    let err = stream.take(200).read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert!(err.to_string().contains("too slow"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
