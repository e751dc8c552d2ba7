//! The `.aez` container against its specification (docs/FORMAT.md): round trips, every header
//! rule, truncation at every byte, and corruption anywhere.

use std::io::Cursor;

use aecodec::container::{
    CodingParams, CodingTool, ColorSpace, ContainerError, ContainerReader, ContainerWriter,
    FrameType, Header, HeaderError, Packet, Rational, SeekableReader, FOOTER_LEN, PREAMBLE_LEN,
};

fn header() -> Header {
    Header {
        width: 30,
        height: 20,
        coded_width: 32,
        coded_height: 32,
        frame_rate: Rational::new(30000, 1001),
        time_base: Rational::new(1001, 30000),
        frame_count: 0,
        color: ColorSpace::Srgb8,
        tools: vec![
            CodingTool {
                model_id: aecodec::model_file::ModelId([7; 32]),
                model_bytes: 1234,
                coding: CodingParams::Pca {
                    block: 8,
                    components: 12,
                    step: 0.5,
                },
            },
            CodingTool {
                model_id: aecodec::model_file::ModelId([9; 32]),
                model_bytes: 99,
                coding: CodingParams::Learned { quality: 2 },
            },
        ],
        level: 3,
        version: aecodec::container::VERSION,
    }
}

/// Frame type, tool, pts and payload of each packet: two groups of pictures, one per tool.
fn payloads() -> Vec<(FrameType, u8, i64, Vec<u8>)> {
    (0..6)
        .map(|i| {
            let t = if i % 3 == 0 {
                FrameType::Intra
            } else {
                FrameType::Predicted
            };
            let payload = (0..(i * 37 % 90)).map(|b| (b * 13 + i) as u8).collect();
            (t, (i / 3) as u8, 10 * i as i64, payload)
        })
        .collect()
}

fn write_file(h: &Header) -> Vec<u8> {
    let mut w = ContainerWriter::new(Cursor::new(Vec::new()), h.clone()).unwrap();
    for (t, tool, pts, p) in payloads() {
        w.write_packet(t, tool, pts, &p).unwrap();
    }
    let (out, header) = w.finish().unwrap();
    assert_eq!(header.frame_count, payloads().len() as u32);
    out.into_inner()
}

/// Reads a whole stream front to back: the packets before the first error, and the error.
fn read_stream(bytes: &[u8]) -> (Vec<Packet>, Option<ContainerError>) {
    let mut reader = match ContainerReader::new(bytes) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut packets = Vec::new();
    loop {
        match reader.next_packet() {
            Ok(Some(p)) => packets.push(p),
            Ok(None) => return (packets, None),
            Err(e) => return (packets, Some(e)),
        }
    }
}

#[test]
fn round_trip_streaming_and_seeking() {
    let bytes = write_file(&header());
    let (packets, err) = read_stream(&bytes);
    assert!(err.is_none(), "{err:?}");
    let expected = payloads();
    assert_eq!(packets.len(), expected.len());
    for (p, (t, tool, pts, payload)) in packets.iter().zip(&expected) {
        assert_eq!(
            (p.frame_type, p.tool, p.pts, &p.payload),
            (*t, *tool, *pts, payload)
        );
    }
    let mut seekable = SeekableReader::new(Cursor::new(&bytes)).unwrap();
    let mut h = header();
    h.frame_count = expected.len() as u32;
    assert_eq!(seekable.header(), &h);
    for i in (0..expected.len()).rev() {
        assert_eq!(seekable.read_packet(i as u64).unwrap(), packets[i]);
    }
    assert!(matches!(
        seekable.read_packet(99),
        Err(ContainerError::NoSuchFrame(99))
    ));
}

/// Writes a file whose header bypasses the writer's validation.
fn file_with_raw_header(h: &Header) -> Vec<u8> {
    let body = bincode::serde::encode_to_vec(h, bincode::config::legacy()).unwrap();
    let mut out = b"AEZV".to_vec();
    out.extend_from_slice(&aecodec::container::VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn every_header_field_is_rejected_out_of_range() {
    type Mutation = (&'static str, fn(&mut Header));
    let cases: &[Mutation] = &[
        ("width", |h| h.width = 0),
        ("width", |h| h.width = 16_385),
        ("height", |h| h.height = 0),
        ("height", |h| h.height = 100_000),
        ("pixels", |h| {
            h.width = 16_384;
            h.height = 16_384;
            h.coded_width = 16_384;
            h.coded_height = 16_384;
        }),
        ("coded_width", |h| h.coded_width = 29),
        ("coded_width", |h| h.coded_width = 30 + 256 + 8),
        ("coded_height", |h| h.coded_height = 8),
        ("stride", |h| h.coded_width = 36),
        ("frame_rate", |h| h.frame_rate = Rational::new(0, 1)),
        ("frame_rate", |h| h.frame_rate = Rational::new(1, 0)),
        ("frame_rate", |h| h.frame_rate = Rational::new(2_000_000, 1)),
        ("frame_rate", |h| h.frame_rate = Rational::new(5000, 1)),
        ("time_base", |h| h.time_base = Rational::new(0, 25)),
        ("frame_count", |h| h.frame_count = 10_000_001),
        ("model_bytes", |h| h.tools[1].model_bytes = 1 << 40),
        ("tools", |h| h.tools.clear()),
        ("tools", |h| h.tools = vec![h.tools[0]; 17]),
        ("PCA block", |h| {
            h.tools[0].coding = CodingParams::Pca {
                block: 7,
                components: 1,
                step: 1.0,
            }
        }),
        ("components", |h| {
            h.tools[0].coding = CodingParams::Pca {
                block: 8,
                components: 0,
                step: 1.0,
            }
        }),
        ("components", |h| {
            h.tools[0].coding = CodingParams::Pca {
                block: 8,
                components: 193,
                step: 1.0,
            }
        }),
        ("PCA step", |h| {
            h.tools[0].coding = CodingParams::Pca {
                block: 8,
                components: 4,
                step: f32::NAN,
            }
        }),
        ("PCA step", |h| {
            h.tools[0].coding = CodingParams::Pca {
                block: 8,
                components: 4,
                step: -1.0,
            }
        }),
        ("pixel step", |h| {
            h.tools[1].coding = CodingParams::Pixel { step: 0 }
        }),
    ];
    for (field, mutate) in cases {
        let mut h = header();
        mutate(&mut h);
        let err = ContainerReader::new(file_with_raw_header(&h).as_slice()).err();
        let msg = err.as_ref().map(ToString::to_string).unwrap_or_default();
        let keyword = field.split(' ').next_back().unwrap();
        assert!(
            matches!(err, Some(ContainerError::BadHeader(_))) && msg.contains(keyword),
            "{field}: {msg:?}"
        );
        // The writer refuses the same header (it sets frame_count itself).
        if *field != "frame_count" {
            assert!(
                ContainerWriter::new(Cursor::new(Vec::new()), h).is_err(),
                "{field}"
            );
        }
    }
    // An unmutated raw header is fine, so each case above fails for its own field.
    assert!(ContainerReader::new(file_with_raw_header(&header()).as_slice()).is_ok());
}

#[test]
fn bad_magic_version_and_header_bytes_are_named() {
    let good = write_file(&header());
    let mut bad = good.clone();
    bad[0] = b'X';
    assert!(matches!(
        read_stream(&bad).1,
        Some(ContainerError::BadMagic(_))
    ));
    // Version 1 (before the learned coder's context-coded predicted frames) and a future one.
    for version in [1u16, aecodec::container::VERSION + 1] {
        let mut bad = good.clone();
        bad[4..6].copy_from_slice(&version.to_le_bytes());
        assert!(matches!(
            read_stream(&bad).1,
            Some(ContainerError::UnsupportedVersion(v)) if v == version
        ));
    }
    // Versions 2 to 4 hold one tool inline, so this header read as theirs does not parse
    // (files of those versions decode: tests/versions.rs).
    let mut older = good.clone();
    older[4..6].copy_from_slice(&4u16.to_le_bytes());
    assert!(matches!(
        read_stream(&older).1,
        Some(ContainerError::BadHeader(HeaderError::Layout(_)))
    ));
    let mut bad = good.clone();
    bad[6..10].copy_from_slice(&1_000_000u32.to_le_bytes());
    assert!(matches!(
        read_stream(&bad).1,
        Some(ContainerError::BadHeader(HeaderError::Length(1_000_000)))
    ));
    let mut bad = good;
    bad[PREAMBLE_LEN as usize + 2] ^= 1;
    assert!(matches!(
        read_stream(&bad).1,
        Some(ContainerError::BadHeader(HeaderError::Crc { .. }))
    ));
}

#[test]
fn truncation_at_every_byte_keeps_every_complete_packet() {
    let bytes = write_file(&header());
    let (all, _) = read_stream(&bytes);
    let ends: Vec<u64> = all.iter().map(|p| p.offset + p.stored_len()).collect();
    for cut in 0..bytes.len() {
        let (packets, err) = read_stream(&bytes[..cut]);
        let complete = ends.iter().filter(|&&e| e <= cut as u64).count();
        assert_eq!(packets.len(), complete, "cut at {cut}");
        assert_eq!(packets, all[..complete], "cut at {cut}");
        let err = err.unwrap_or_else(|| panic!("cut at {cut} read as a whole file"));
        if complete < all.len() {
            assert!(err.is_truncation(), "cut at {cut}: {err}");
            if let ContainerError::Truncated { frame, offset } = err {
                assert_eq!(frame, complete as u64);
                assert!(offset <= cut as u64);
            }
        }
        assert!(
            SeekableReader::new(Cursor::new(&bytes[..cut])).is_err(),
            "seekable, cut at {cut}"
        );
    }
}

#[test]
fn a_flipped_bit_anywhere_is_detected() {
    let bytes = write_file(&header());
    let (all, _) = read_stream(&bytes);
    for pos in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x10;
        let (packets, err) = read_stream(&bad);
        assert!(err.is_some(), "flip at byte {pos} went unnoticed");
        // Whatever was returned before the error is what was written.
        for p in &packets {
            assert!(
                all.iter().any(|q| q.payload == p.payload),
                "flip at {pos} changed a payload"
            );
        }
    }
}

#[test]
fn payload_flip_is_a_crc_error_naming_the_frame() {
    let bytes = write_file(&header());
    let (all, _) = read_stream(&bytes);
    let target = &all[4];
    let mut bad = bytes.clone();
    bad[(target.offset + target.head_len + 3) as usize] ^= 0xff;
    let (packets, err) = read_stream(&bad);
    assert_eq!(packets.len(), 4);
    match err {
        Some(ContainerError::PayloadCrc {
            frame: 4, offset, ..
        }) => assert_eq!(offset, target.offset),
        other => panic!("expected a CRC error in frame 4, got {other:?}"),
    }
}

#[test]
fn hostile_payload_length_is_refused_before_reading() {
    let bytes = write_file(&header());
    let (all, _) = read_stream(&bytes);
    let mut bad = bytes[..(all[1].offset as usize)].to_vec();
    bad.push(b'P');
    bad.push(0);
    // pts 999 (zigzag, LEB128), then a length of 2^32 − 1.
    bad.extend_from_slice(&[0xce, 0x0f]);
    bad.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    bad.extend_from_slice(&0u32.to_le_bytes());
    let (packets, err) = read_stream(&bad);
    assert_eq!(packets.len(), 1);
    assert!(
        matches!(err, Some(ContainerError::BadPacket { frame: 1, ref what, .. }) if what.contains("above the limit")),
        "{err:?}"
    );
}

#[test]
fn an_overlong_integer_in_a_packet_head_is_refused() {
    let bytes = write_file(&header());
    let (all, _) = read_stream(&bytes);
    let mut bad = bytes[..(all[1].offset as usize)].to_vec();
    bad.extend_from_slice(&[b'P', 0]);
    bad.extend_from_slice(&[0xff; 12]);
    bad.extend_from_slice(&[0u8; 8]);
    let (packets, err) = read_stream(&bad);
    assert_eq!(packets.len(), 1);
    assert!(
        matches!(err, Some(ContainerError::BadPacket { frame: 1, ref what, .. }) if what.contains("pts")),
        "{err:?}"
    );
}

#[test]
fn packets_and_index_cost_a_few_bytes_each() {
    // Heads of 8 or 9 bytes (one-byte pts, a length of one or two), 4 for an empty payload
    // (no CRC), and index entries of 2 or 3.
    let bytes = write_file(&header());
    let (all, _) = read_stream(&bytes);
    assert!(all.iter().any(|p| p.payload.is_empty()));
    for p in &all {
        let head = match p.payload.len() {
            0 => 4,
            len => 8 + u64::from(len >= 128),
        };
        assert_eq!(p.head_len, head, "{p:?}");
    }
    let reader = SeekableReader::new(Cursor::new(&bytes)).unwrap();
    let packets_end = all.last().map(|p| p.offset + p.stored_len()).unwrap();
    let index_and_footer = bytes.len() as u64 - packets_end;
    assert!(
        index_and_footer <= 9 + 3 * all.len() as u64 + FOOTER_LEN,
        "{index_and_footer} bytes for {} entries",
        reader.index().len()
    );
}

#[test]
fn writer_refuses_out_of_order_timestamps() {
    let mut w = ContainerWriter::new(Cursor::new(Vec::new()), header()).unwrap();
    w.write_packet(FrameType::Intra, 0, 5, b"a").unwrap();
    assert!(w.write_packet(FrameType::Intra, 0, 5, b"b").is_err());
}

#[test]
fn a_packet_names_one_of_the_headers_tools() {
    let mut w = ContainerWriter::new(Cursor::new(Vec::new()), header()).unwrap();
    assert!(w.write_packet(FrameType::Intra, 2, 0, b"a").is_err());
    // The flags byte of a stored packet naming tool 2 of two: bits 1-7 hold the tool.
    let bytes = write_file(&header());
    let (all, _) = read_stream(&bytes);
    let mut bad = bytes.clone();
    bad[all[3].offset as usize + 1] = 2 << 1;
    let (packets, err) = read_stream(&bad);
    assert_eq!(packets.len(), 3);
    assert!(
        matches!(err, Some(ContainerError::BadPacket { frame: 3, ref what, .. }) if what.contains("tool 2")),
        "{err:?}"
    );
    // Tool 1 is there: the same byte with tool 1 reads.
    bad[all[3].offset as usize + 1] = 1 << 1;
    let crc_ok = read_stream(&bad);
    assert_eq!(crc_ok.0.len(), 6, "{:?}", crc_ok.1);
}
