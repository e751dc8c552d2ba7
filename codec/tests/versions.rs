//! Files written by earlier builds, and the current format, decode: the real `.aez` seeds of
//! the fuzzer (`fuzz/seeds`), one from before motion compensation (version 2), the same
//! clip with motion fields in its predicted frames written as version 3 (ANS streams not
//! sealed) and version 4 (sealed), version-5 files whose groups of pictures use two different
//! models, and a version-6 file (the current format) whose predicted frames move the previous
//! picture (detail mode 6).
//!
//! The version 2–4 seeds were coded with the first default quality-1 model (id `f7a6efd0…`),
//! which the default ladder has since replaced; it is kept beside these tests
//! (`tests/models/`), as a user keeps the model of an old file, and given to the decoder's
//! model store as a file. The version-5 and 6 seeds use the built-in learned q1 model.

use std::path::Path;

use aecodec::container::{ContainerReader, FrameType, Packet};
use aecodec::metrics::psnr;
use aecodec::pipeline::FrameDecoder;
use aecodec::registry::ModelStore;
use aecodec::RgbFrame;

/// The built-in models, and the old default model the earliest seeds were coded with.
fn seed_models() -> ModelStore {
    let old = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models/learned-q1-f7a6efd0.model");
    ModelStore::with_files(&[old]).unwrap()
}

/// The file's version, its frames decoded, and whether a predicted frame carried motion.
fn decode_seed(name: &str) -> (u16, Vec<RgbFrame>, bool) {
    let (version, frames, moved, _) = decode_seed_tools(name);
    (version, frames, moved)
}

/// Every packet of a seed, as read.
fn seed_packets(name: &str) -> Vec<Packet> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(name);
    let bytes = std::fs::read(path).unwrap();
    let mut reader = ContainerReader::new(bytes.as_slice()).unwrap();
    let mut packets = Vec::new();
    while let Some(packet) = reader.next_packet().unwrap() {
        packets.push(packet);
    }
    packets
}

/// [`decode_seed`], and the tool of every packet.
fn decode_seed_tools(name: &str) -> (u16, Vec<RgbFrame>, bool, Vec<u8>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(name);
    let bytes = std::fs::read(&path).unwrap();
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    let mut reader = ContainerReader::new(bytes.as_slice()).unwrap();
    let mut decoder = FrameDecoder::new(reader.header(), &seed_models()).unwrap();
    let (mut frames, mut moved, mut tools) = (Vec::new(), false, Vec::new());
    while let Some(packet) = reader.next_packet().unwrap() {
        tools.push(packet.tool);
        moved |= packet.frame_type == FrameType::Predicted
            && packet
                .payload
                .first()
                .is_some_and(|&b| b & aecodec::learned::predicted::MOTION_FLAG != 0);
        frames.push(decoder.decode(&packet).unwrap());
    }
    (version, frames, moved, tools)
}

#[test]
fn a_version_2_file_still_decodes() {
    let (version, frames, moved) = decode_seed("tiny-learned-3frames.aez");
    assert_eq!(version, 2);
    assert_eq!(frames.len(), 3);
    assert!(!moved);
    // Consecutive frames of this 64×64 crop of carphone look alike; a misparsed latent would
    // not.
    for pair in frames.windows(2) {
        let p = psnr(&pair[0], &pair[1]);
        assert!(p > 25.0, "consecutive frames only {p:.1} dB apart");
    }
}

/// The seeds are the top 640×64 strip of the first 4 frames of `samples/bikes.mp4` (the camera
/// pans), encoded at quality 1: `ffmpeg -i samples/bikes.mp4 -vf crop=640:64:0:0 -frames:v 4
/// -c:v ffv1 strip.mkv && aecodec encode strip.mkv -q 1 -o strip.aez`, by a version-3 build and
/// by a version-4 one.
#[test]
fn predicted_frames_with_motion_fields_decode() {
    for (seed, expected) in [
        ("bikes-strip-learned-motion.aez", 3),
        ("bikes-strip-learned-motion-v4.aez", 4),
    ] {
        decodes_close_to_the_source(seed, expected);
    }
}

/// The same strip at `aecodec encode strip.mkv --gop 2 --bitrate 120k` (coded again whenever
/// the built-in models change, last when the levels' learned q1 did, 2026-11-26): its first
/// group at level 1 (the learned model alone), its second at level 3 (with a detail layer).
/// The first seed's detail layer is in the first ("full") layout, the second's in the banded
/// one, the third's second group without base layer (its payloads' base length is 0), the
/// fourth's in the switched layout the encoder writes today (each block in one of three
/// transforms; docs/FORMAT.md).
#[test]
fn a_version_5_file_switches_models_between_groups() {
    for seed in [
        "bikes-strip-learned-rate-v5.aez",
        "bikes-strip-learned-rate-v5-banded.aez",
        "bikes-strip-learned-rate-v5-baseless.aez",
        "bikes-strip-learned-rate-v5-switched.aez",
    ] {
        let (version, frames, _, tools) = decode_seed_tools(seed);
        assert_eq!(version, 5);
        assert_eq!(tools, [0, 0, 2, 2], "{seed}");
        close_to_the_source(seed, &frames);
    }
    // Base length, then (without base) the detail layer's mode byte, of the second group.
    let heads = |seed: &str| -> Vec<[u8; 2]> {
        let mut heads: Vec<[u8; 2]> = seed_packets(seed)
            .iter()
            .map(|p| [p.payload[0], p.payload[1]])
            .collect();
        heads.split_off(2)
    };
    // Intra and banded (mode 2), then a change or the coefficients again (3 or 2).
    let baseless = heads("bikes-strip-learned-rate-v5-baseless.aez");
    assert_eq!(baseless[0], [0, 2], "{baseless:?}");
    assert!(
        baseless[1] == [0, 3] || baseless[1] == [0, 2],
        "{baseless:?}"
    );
    let switched = heads("bikes-strip-learned-rate-v5-switched.aez");
    assert_eq!(switched[0], [0, 4], "{switched:?}");
    assert!(
        switched[1] == [0, 5] || switched[1] == [0, 4],
        "{switched:?}"
    );
}

/// `aecodec encode samples/carphone_pristine.mp4 --frames 6 -o carphone-6frames-v6-motion.aez`
/// (the default level): one group without learned base whose predicted frames are the
/// previous picture moved plus a detail layer.
#[test]
fn a_version_6_file_moves_the_previous_picture() {
    let seed = "carphone-6frames-v6-motion.aez";
    let (version, frames, _, _) = decode_seed_tools(seed);
    assert_eq!(version, 6);
    // Base length 0, then the detail layer's mode byte.
    let moved = seed_packets(seed)
        .iter()
        .filter(|p| p.payload[..2] == [0, 6])
        .count();
    assert!(moved >= 3, "{moved} frames moved the previous picture");
    close_to_carphone(&frames, 30.0);
}

/// The 6 decoded frames are each within `min_db` of the first frames of
/// `samples/carphone_pristine.mp4`.
fn close_to_carphone(frames: &[RgbFrame], min_db: f64) {
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/carphone_pristine.mp4");
    let mut source = aecodec::video::VideoReader::open(&clip).unwrap();
    assert_eq!(frames.len(), 6);
    for (i, decoded) in frames.iter().enumerate() {
        let original = source.next_frame().unwrap().unwrap();
        let p = psnr(&original, decoded);
        assert!(p > min_db, "frame {i} decodes to {p:.1} dB of its source");
    }
}

/// `aecodec encode samples/carphone_pristine.mp4 --frames 6 -o carphone-6frames-v7-learned.aez`
/// (the default level of the shallow model): the intra frame carries the learned picture
/// (its intra payload with a channel context), the predicted frames move the decoded picture.
#[test]
fn a_version_7_file_decodes_the_learned_picture_and_moves_it() {
    learned_intra_then_moved("carphone-6frames-v7-learned.aez", 7);
}

/// `aecodec encode samples/carphone_pristine.mp4 --frames 6 -o carphone-6frames-v8-split.aez`:
/// as version 7, with the motion fields of version 8 (blocks split into cells, vectors that
/// follow their neighbours said by a flag).
#[test]
fn a_version_8_file_decodes_its_split_motion_fields() {
    learned_intra_then_moved("carphone-6frames-v8-split.aez", 8);
}

/// `aecodec encode samples/carphone_pristine.mp4 --frames 6 -o carphone-6frames-v9-compact.aez`:
/// as version 8, with compact packet heads and index entries.
#[test]
fn a_version_9_file_has_compact_packet_heads() {
    let seed = "carphone-6frames-v9-compact.aez";
    learned_intra_then_moved(seed, 9);
    // A head of marker, flags, one-byte pts, a length of one to three bytes and the CRC.
    for p in seed_packets(seed) {
        assert!((8..=10).contains(&p.head_len), "{p:?}");
    }
}

/// `aecodec encode samples/carphone_pristine.mp4 --frames 6 -o carphone-6frames-v10-deblocked.aez`:
/// as version 9, with the intra frame's picture deblocked too.
#[test]
fn a_version_10_file_deblocks_its_intra_frame() {
    learned_intra_then_moved("carphone-6frames-v10-deblocked.aez", 10);
}

/// `aecodec encode samples/carphone_pristine.mp4 --frames 6 -o carphone-6frames-v11-listed.aez`:
/// as version 10, its detail layers naming the few table groups they use in a list instead of
/// a 100-byte mask. The same pictures as the version 10 seed, for fewer bytes in every
/// predicted frame.
#[test]
fn a_version_11_file_lists_its_detail_layers_groups() {
    let (listed, masked) = (
        "carphone-6frames-v11-listed.aez",
        "carphone-6frames-v10-deblocked.aez",
    );
    same_pictures_in_fewer_bytes(listed, 11, masked, 1);
}

/// `aecodec encode samples/carphone_pristine.mp4 --frames 6 -o carphone-6frames-v12-kept.aez`:
/// as version 11, each motion-compensated frame after the first keeping the tables of the one
/// before it where they cost little more. The same pictures as the version 11 seed; the first
/// moved frame has nothing to keep and is the same, every later one is smaller.
#[test]
fn a_version_12_file_keeps_the_tables_of_the_moved_frame_before() {
    let (kept, given) = (
        "carphone-6frames-v12-kept.aez",
        "carphone-6frames-v11-listed.aez",
    );
    same_pictures_in_fewer_bytes(kept, 12, given, 2);
    assert_eq!(
        seed_packets(kept)[1].payload,
        seed_packets(given)[1].payload
    );
}

/// `aecodec encode samples/carphone_pristine.mp4 --frames 6 -o
/// carphone-6frames-v13-bidirectional.aez`: after the intra frame, frames two by two, the first
/// predicted from the frames either side (detail mode 7, carrying the second hidden), the second
/// shown by a packet of its own (mode 8); the last frame alone, moved (mode 6). It decodes
/// close to its source, in fewer bytes than the version 12 seed of the same frames.
#[test]
fn a_version_13_file_has_bidirectional_frames() {
    let seed = "carphone-6frames-v13-bidirectional.aez";
    let (version, frames, _, _) = decode_seed_tools(seed);
    assert_eq!(version, 13);
    let modes: Vec<(FrameType, u8)> = seed_packets(seed)
        .iter()
        .map(|p| {
            let (_, detail) = aecodec::coders::DetailedCoder::split(&p.payload).unwrap();
            (p.frame_type, detail[0])
        })
        .collect();
    let predicted = |m| (FrameType::Predicted, m);
    assert_eq!(modes[0].0, FrameType::Intra);
    assert_eq!(modes[1..], [7, 8, 7, 8, 6].map(predicted), "{modes:?}");
    // The frames between are coded at four times the intra frame's step (29.6 dB here; the
    // moved frames of the version 12 seed, 31.8–32.5).
    close_to_carphone(&frames, 29.0);
    let bytes = |name: &str| {
        seed_packets(name)
            .iter()
            .map(|p| p.payload.len())
            .sum::<usize>()
    };
    let older = bytes("carphone-6frames-v12-kept.aez");
    assert!(bytes(seed) < older, "{} vs {older} bytes", bytes(seed));
}

/// `aecodec encode samples/carphone_pristine.mp4 --frames 6 -o
/// carphone-6frames-v17-modes.aez`: as version 13, with the changes of versions 14 to 17 (a side
/// per unit, changes as flags, one stream per moved frame, empty packets to show an anchor,
/// a mode per block of a moved frame). It decodes close to its source, in fewer bytes than the
/// version 13 seed of the same frames.
#[test]
fn a_version_17_file_gives_its_moved_blocks_modes() {
    let seed = "carphone-6frames-v17-modes.aez";
    let (version, frames, _, _) = decode_seed_tools(seed);
    assert_eq!(version, 17);
    let packets = seed_packets(seed);
    intra_then_bidirectional_pairs(&packets);
    close_to_carphone(&frames, 29.0);
    let bytes = |packets: &[Packet]| packets.iter().map(|p| p.payload.len()).sum::<usize>();
    let older = bytes(&seed_packets("carphone-6frames-v13-bidirectional.aez"));
    assert!(
        bytes(&packets) < older,
        "{} vs {older} bytes",
        bytes(&packets)
    );
}

/// `aecodec encode samples/carphone_pristine.mp4 --frames 6 --quality 6 -o
/// carphone-6frames-v18-intra.aez`: as version 17, and a block of its last moved frame is
/// intra, predicted from the decoded pixels beside it (version 18; at the default level these
/// six frames have no intra block). It decodes close to its source.
#[test]
fn a_version_18_file_predicts_blocks_from_their_own_frame() {
    let seed = "carphone-6frames-v18-intra.aez";
    let (version, frames, _, _) = decode_seed_tools(seed);
    assert_eq!(version, 18);
    intra_then_bidirectional_pairs(&seed_packets(seed));
    close_to_carphone(&frames, 33.0);
}

/// Six packets are an intra frame, two bidirectional frames each with the packet that shows
/// its anchor (empty), and a moved frame (their layers' mode bytes 7, none, 7, none, 6).
fn intra_then_bidirectional_pairs(packets: &[Packet]) {
    let modes: Vec<(FrameType, Option<u8>)> = packets
        .iter()
        .map(|p| {
            let detail = aecodec::coders::DetailedCoder::split(&p.payload).ok();
            (p.frame_type, detail.map(|(_, d)| d[0]))
        })
        .collect();
    assert_eq!(modes[0].0, FrameType::Intra);
    let (between, shown, moved) = (Some(7), None, Some(6));
    let predicted = |m| (FrameType::Predicted, m);
    assert_eq!(
        modes[1..],
        [between, shown, between, shown, moved].map(predicted),
        "{modes:?}"
    );
}

/// Seed `newer` (of `version`) is a learned intra frame then moved frames, and decodes to the
/// pictures of seed `older`, every packet from `first_smaller` on in fewer bytes.
fn same_pictures_in_fewer_bytes(newer: &str, version: u16, older: &str, first_smaller: usize) {
    learned_intra_then_moved(newer, version);
    assert_eq!(decode_seed_tools(newer).1, decode_seed_tools(older).1);
    let (newer, older) = (seed_packets(newer), seed_packets(older));
    for (n, o) in newer.iter().zip(&older).skip(first_smaller) {
        assert!(n.payload.len() < o.payload.len(), "{n:?} {o:?}");
    }
}

/// The seed's intra frame carries the learned picture and its predicted frames move the
/// decoded picture; it decodes close to its source.
fn learned_intra_then_moved(seed: &str, expected_version: u16) {
    let (version, frames, _, _) = decode_seed_tools(seed);
    assert_eq!(version, expected_version);
    let heads: Vec<(FrameType, usize, u8)> = seed_packets(seed)
        .iter()
        .map(|p| {
            let (base, detail) = aecodec::coders::DetailedCoder::split(&p.payload).unwrap();
            (p.frame_type, base.len(), detail[0])
        })
        .collect();
    assert_eq!(heads[0].0, FrameType::Intra);
    assert!(
        heads[0].1 > 0,
        "the intra frame has no learned picture: {heads:?}"
    );
    assert!(heads[1..].iter().all(|h| h.2 == 6), "{heads:?}");
    close_to_carphone(&frames, 32.0);
}

fn decodes_close_to_the_source(seed: &str, expected_version: u16) {
    let (version, frames, moved) = decode_seed(seed);
    assert_eq!(version, expected_version, "{seed}");
    assert!(
        moved,
        "the seed's predicted frames should carry motion fields"
    );
    close_to_the_source(seed, &frames);
}

fn close_to_the_source(seed: &str, frames: &[RgbFrame]) {
    assert_eq!(frames.len(), 4, "{seed}");
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/bikes.mp4");
    let mut source = aecodec::video::VideoReader::open(&clip).unwrap();
    for (i, decoded) in frames.iter().enumerate() {
        let original = source.next_frame().unwrap().unwrap().cropped(640, 64);
        let p = psnr(&original, decoded);
        println!("frame {i}: {p:.2} dB");
        assert!(p > 30.0, "frame {i} decodes to {p:.1} dB of its source");
    }
}
