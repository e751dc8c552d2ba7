//! Rate control: which coding tool (model, quantizer step) codes each group of pictures, so
//! that a stream lands on an asked average bitrate and, given a buffer, never needs more than
//! a peak rate.
//!
//! Each choice is made on the real sizes of the group ([`FrameEncoder::code_group`]), not on
//! a rate model. The choice is one pass, group by group ([`RateController`]): the tool whose
//! size is nearest to what is left of the budget after the groups before it, among those the
//! buffer allows, found by walking one tool at a time from the previous group's (two or three
//! encodes per group). Errors are fed forward, so the stream's total stays within about half
//! the difference between two tools on one group of the target, whatever its length.

use std::borrow::Cow;
use std::io::{Seek, Write};
use std::ops::ControlFlow;

use crate::coders::EncodedFrame;
use crate::container::{index_entry_len, packet_head_len, ContainerWriter, Rational, VERSION};
use crate::pipeline::{FrameEncoder, FrameSource, StreamError};
use crate::RgbFrame;

/// What rate control aims for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateTarget {
    /// Average bitrate over the stream, bits per second (the whole file counts).
    pub bitrate: f64,
    /// A peak limit: the rate a player's buffer of [`bufsize`](Self::bufsize) bits is filled
    /// at. Every frame must be in that buffer by its time (the VBV model of H.264 and x264's
    /// `--vbv-maxrate`/`--vbv-bufsize`).
    pub maxrate: Option<f64>,
    /// The player's buffer in bits; with `maxrate` only, one second of it.
    pub bufsize: Option<f64>,
}

/// Why a rate target was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RateError {
    #[error("the bitrate must be a positive number of bits per second, got {0}")]
    Bitrate(f64),
    #[error("the peak rate {maxrate} is below the average bitrate {bitrate}")]
    PeakBelowAverage { maxrate: f64, bitrate: f64 },
    #[error("the buffer size must be a positive number of bits, got {0}")]
    Buffer(f64),
}

impl RateTarget {
    /// Checks the numbers: positive, and a peak not below the average.
    pub fn validate(&self) -> Result<(), RateError> {
        if !(self.bitrate.is_finite() && self.bitrate > 0.0) {
            return Err(RateError::Bitrate(self.bitrate));
        }
        if let Some(maxrate) = self.maxrate {
            if !(maxrate.is_finite() && maxrate >= self.bitrate) {
                return Err(RateError::PeakBelowAverage {
                    maxrate,
                    bitrate: self.bitrate,
                });
            }
        }
        if let Some(b) = self.bufsize {
            if !(b.is_finite() && b > 0.0) {
                return Err(RateError::Buffer(b));
            }
        }
        Ok(())
    }
}

/// Parses a rate as ffmpeg and x264 write them: bits per second, with an optional `k` or `M`
/// (`600k`, `1.5M`, `800000`).
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (number, scale) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'm' | 'M')) => (&t[..i], 1e6),
        _ => (t, 1.0),
    };
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * scale),
        _ => Err(format!(
            "{text:?} is not a rate: write bits per second, such as 600k, 1.5M or 800000"
        )),
    }
}

/// The decoder's buffer under a peak rate: bits arrive at `maxrate` up to `size`; each
/// frame's bits leave at its time and must all be there.
#[derive(Debug, Clone, Copy)]
struct Buffer {
    size: f64,
    /// Bits that arrive during one frame time.
    per_frame: f64,
    fullness: f64,
}

impl Buffer {
    /// The buffer after `frames` (sizes in bytes), or `None` if one of them would not be in
    /// it by its time.
    fn after(mut self, frames: impl Iterator<Item = u64>) -> Option<Self> {
        for bytes in frames {
            let bits = bytes as f64 * 8.0;
            if bits > self.fullness {
                return None;
            }
            self.fullness = (self.fullness - bits + self.per_frame).min(self.size);
        }
        Some(self)
    }
}

/// Chooses one tool per group of pictures, in stream order.
#[derive(Debug, Clone)]
pub struct RateController {
    /// Bytes the stream may spend per frame, container included.
    bytes_per_frame: f64,
    frames: u64,
    bytes: f64,
    buffer: Option<Buffer>,
    /// Groups for which no tool kept the buffer from running dry.
    overflows: u64,
    /// The tool of the group before.
    last: Option<usize>,
}

/// A pts of two bytes, as most files' packets have, for the container bytes below.
const TYPICAL_PTS: i64 = 1000;

/// A packet of `payload` bytes as the stream carries it: with its head.
fn with_head(payload: u64) -> u64 {
    payload + packet_head_len(VERSION, TYPICAL_PTS, payload)
}

/// Container bytes a packet of `payload` bytes costs in the file: its head and its index
/// entry too.
fn in_file(payload: u64) -> u64 {
    let packet = with_head(payload);
    packet + index_entry_len(1, packet)
}

impl RateController {
    /// A controller for a stream at `frame_rate` that has already written `start_bytes`
    /// (its header).
    pub fn new(target: RateTarget, frame_rate: Rational, start_bytes: u64) -> Self {
        let fps = frame_rate.as_f64();
        let buffer = target.maxrate.map(|maxrate| {
            let size = target.bufsize.unwrap_or(maxrate);
            Buffer {
                size,
                per_frame: maxrate / fps,
                // x264's default initial occupancy.
                fullness: 0.9 * size,
            }
        });
        Self {
            bytes_per_frame: target.bitrate / 8.0 / fps,
            frames: 0,
            bytes: start_bytes as f64,
            buffer,
            overflows: 0,
            last: None,
        }
    }

    /// Picks the tool for the next group from its payload sizes with each tool
    /// (`sizes[tool][frame]`), and counts the group as written with it.
    pub fn choose(&mut self, sizes: &[Vec<u64>]) -> usize {
        let all = |t: usize| Ok::<_, std::convert::Infallible>(sizes[t].clone());
        match self.choose_with(sizes.len(), all) {
            Ok(t) => t,
            Err(never) => match never {},
        }
    }

    /// [`choose`](Self::choose), asking `sizes(tool)` only for the tools it needs. Tools are
    /// ordered from smallest to largest output (lowest quality first), so the size nearest
    /// the budget is found by walking from the tool of the group before, one tool at a time:
    /// usually two or three trials instead of one per tool.
    pub fn choose_with<E>(
        &mut self,
        tools: usize,
        mut sizes: impl FnMut(usize) -> Result<Vec<u64>, E>,
    ) -> Result<usize, E> {
        // The walk only moves away from `start`, so no tool is asked for twice.
        let start = self.last.unwrap_or(tools / 2).min(tools - 1);
        let first = sizes(start)?;
        let frames = first.len() as u64;
        let budget = (self.frames + frames) as f64 * self.bytes_per_frame - self.bytes;
        let cost = |s: &[u64]| s.iter().map(|&b| in_file(b) as f64).sum::<f64>();
        let fits = |s: &[u64], buffer: Option<Buffer>| {
            buffer.is_none_or(|b| b.after(s.iter().map(|&x| with_head(x))).is_some())
        };
        let mut pick = start;
        let mut pick_sizes = first;
        if fits(&pick_sizes, self.buffer) && cost(&pick_sizes) <= budget {
            // Up while the next tool fits and comes nearer the budget.
            while pick + 1 < tools {
                let next = sizes(pick + 1)?;
                let nearer = (cost(&next) - budget).abs() < (cost(&pick_sizes) - budget).abs();
                if !(nearer && fits(&next, self.buffer)) {
                    break;
                }
                (pick, pick_sizes) = (pick + 1, next);
            }
        } else {
            // Down while this tool does not fit, or the one below comes nearer the budget.
            while pick > 0 {
                let below = sizes(pick - 1)?;
                let nearer = (cost(&below) - budget).abs() < (cost(&pick_sizes) - budget).abs();
                if fits(&pick_sizes, self.buffer) && !nearer {
                    break;
                }
                (pick, pick_sizes) = (pick - 1, below);
            }
        }
        self.frames += frames;
        self.bytes += cost(&pick_sizes);
        self.last = Some(pick);
        if let Some(b) = self.buffer {
            match b.after(pick_sizes.iter().map(|&s| with_head(s))) {
                Some(after) => self.buffer = Some(after),
                None => {
                    // Even the smallest tool runs the buffer dry: it is written anyway and
                    // the buffer is taken as empty.
                    self.overflows += 1;
                    self.buffer = Some(Buffer { fullness: 0.0, ..b });
                }
            }
        }
        Ok(pick)
    }

    /// Groups where every tool needed more than the peak rate and buffer allow.
    pub fn overflows(&self) -> u64 {
        self.overflows
    }
}

/// What [`encode_stream_at_rate`] did.
#[derive(Debug, Clone, Default)]
pub struct RateReport {
    pub frames: u64,
    /// The tool of each group of pictures, in order.
    pub group_tools: Vec<u8>,
    /// Groups for which no tool met the peak rate (the smallest was written).
    pub overflows: u64,
    /// Encodes of a group with a tool, over the stream (at least one per group).
    pub trials: u64,
}

impl RateReport {
    /// How many groups used each of `tools` tools.
    pub fn groups_per_tool(&self, tools: usize) -> Vec<usize> {
        let mut counts = vec![0; tools];
        for &t in &self.group_tools {
            counts[usize::from(t)] += 1;
        }
        counts
    }
}

/// Encodes the frames of `source` (at most `limit`) into `writer` at `target`: each group of
/// pictures of `encoder` is coded with the tools [`RateController`] tries, and the one it
/// chooses is written. `each` hears of every frame written (its index and payload) and may
/// stop the stream. The caller finishes the writer.
pub fn encode_stream_at_rate<S, W>(
    source: &mut S,
    encoder: &mut FrameEncoder,
    writer: &mut ContainerWriter<W>,
    limit: Option<u64>,
    target: RateTarget,
    mut each: impl FnMut(u64, &EncodedFrame) -> ControlFlow<()>,
) -> Result<RateReport, StreamError<S::Error>>
where
    S: FrameSource + ?Sized,
    W: Write + Seek,
{
    let header = encoder.header().clone();
    let mut control = RateController::new(target, header.frame_rate, writer.bytes_written());
    let mut report = RateReport::default();
    let group_len = u64::from(encoder.gop());
    loop {
        let wanted = limit.map_or(group_len, |m| group_len.min(m - report.frames));
        let group = read_group(source, wanted, report.frames)?;
        if group.is_empty() {
            break;
        }
        let first = report.frames;
        let coder_error = |cause| StreamError::Coder {
            frame: first,
            cause,
        };
        let mut trials: Vec<Option<Vec<EncodedFrame>>> = vec![None; header.tools.len()];
        let tool = control
            .choose_with(header.tools.len(), |t| {
                let coded = encoder.code_group(&group, t as u8)?;
                let sizes = coded.iter().map(|f| f.payload.len() as u64).collect();
                trials[t] = Some(coded);
                Ok(sizes)
            })
            .map_err(coder_error)?;
        report.trials += trials.iter().flatten().count() as u64;
        report.group_tools.push(tool as u8);
        for coded in trials[tool].as_ref().expect("the chosen tool was tried") {
            let frame = report.frames;
            writer.write_packet(coded.frame_type, tool as u8, frame as i64, &coded.payload)?;
            report.frames += 1;
            if each(frame, coded).is_break() {
                return Err(StreamError::Stopped(report.frames));
            }
        }
    }
    report.overflows = control.overflows();
    Ok(report)
}

/// Up to `n` frames of `source`, owned (each may be coded with several tools).
fn read_group<S: FrameSource + ?Sized>(
    source: &mut S,
    n: u64,
    first: u64,
) -> Result<Vec<RgbFrame>, StreamError<S::Error>> {
    let mut group = Vec::new();
    while (group.len() as u64) < n {
        let frame = source
            .next_frame()
            .map_err(|cause| StreamError::Frames {
                frame: first + group.len() as u64,
                cause,
            })?
            .map(Cow::into_owned);
        let Some(frame) = frame else { break };
        group.push(frame);
    }
    Ok(group)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(bitrate: f64) -> RateTarget {
        RateTarget {
            bitrate,
            maxrate: None,
            bufsize: None,
        }
    }

    #[test]
    fn rates_parse_as_ffmpeg_writes_them() {
        assert_eq!(parse_rate("600k"), Ok(600_000.0));
        assert_eq!(parse_rate("1.5M"), Ok(1_500_000.0));
        assert_eq!(parse_rate("800000"), Ok(800_000.0));
        for bad in ["", "k", "-5k", "fast", "0", "nanM"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_are_checked() {
        assert!(target(1e5).validate().is_ok());
        assert_eq!(target(0.0).validate(), Err(RateError::Bitrate(0.0)));
        let peak_low = RateTarget {
            maxrate: Some(5e4),
            ..target(1e5)
        };
        assert!(matches!(
            peak_low.validate(),
            Err(RateError::PeakBelowAverage { .. })
        ));
    }

    /// Groups of 10 frames at 10 frames/s whose sizes with tool t are `sizes[t]` bytes per
    /// frame; returns the tools chosen and the bytes spent over `groups` groups.
    fn run(control: &mut RateController, sizes: &[u64], groups: usize) -> (Vec<usize>, f64) {
        let per_tool: Vec<Vec<u64>> = sizes.iter().map(|&s| vec![s; 10]).collect();
        let mut spent = 0.0;
        let mut chosen = Vec::new();
        for _ in 0..groups {
            let t = control.choose(&per_tool);
            spent += 10.0 * in_file(per_tool[t][0]) as f64;
            chosen.push(t);
        }
        (chosen, spent)
    }

    #[test]
    fn the_average_lands_between_two_tools_by_mixing_them() {
        // 1,000 bytes per frame with tools of 500, 800, 1,300 and 2,000 bytes (plus
        // overhead): only a mix of the 800 and 1,300 ones comes near it.
        let fps = Rational::new(10, 1);
        let mut control = RateController::new(target(80_000.0), fps, 0);
        let (chosen, spent) = run(&mut control, &[500, 800, 1300, 2000], 20);
        let goal = 20.0 * 10.0 * 1000.0;
        assert!((spent - goal).abs() < 0.03 * goal, "{spent} vs {goal}");
        assert!(chosen.iter().all(|&t| t == 1 || t == 2), "{chosen:?}");
        assert!(chosen.contains(&1) && chosen.contains(&2));
    }

    #[test]
    fn targets_outside_the_tools_take_the_nearest() {
        let fps = Rational::new(10, 1);
        let mut low = RateController::new(target(1_000.0), fps, 0);
        assert!(run(&mut low, &[500, 800], 5).0.iter().all(|&t| t == 0));
        let mut high = RateController::new(target(10e6), fps, 0);
        assert!(run(&mut high, &[500, 800], 5).0.iter().all(|&t| t == 1));
    }

    #[test]
    fn the_walk_tries_few_tools_and_finds_the_nearest() {
        // 16 tools of 100, 150, 225, ... bytes per frame; 700 per frame asked.
        let fps = Rational::new(10, 1);
        let sizes: Vec<u64> = (0..16).map(|k| (100.0 * 1.5f64.powi(k)) as u64).collect();
        let per_tool: Vec<Vec<u64>> = sizes.iter().map(|&s| vec![s; 10]).collect();
        let mut walk = RateController::new(target(700.0 * 80.0), fps, 0);
        let mut asked = 0;
        let mut chosen = Vec::new();
        for _ in 0..10 {
            let t = walk
                .choose_with(16, |t| {
                    asked += 1;
                    Ok::<_, ()>(per_tool[t].clone())
                })
                .unwrap();
            chosen.push(t);
        }
        // 506 and 759 bytes (545 and 798 with the container) are the two around 700.
        assert!(chosen.iter().all(|&t| t == 4 || t == 5), "{chosen:?}");
        assert!(chosen.contains(&4) && chosen.contains(&5), "{chosen:?}");
        assert!(asked <= 10 * 3 + 8, "{asked} trials for 10 groups");
    }

    #[test]
    fn a_peak_limit_keeps_groups_the_buffer_cannot_hold_out() {
        // The average would allow the 2,000-byte tool half the time, but a peak of 1,200
        // bytes per frame with a buffer of two frames' worth never does.
        let fps = Rational::new(10, 1);
        let peak = RateTarget {
            bitrate: 120_000.0,
            maxrate: Some(96_000.0 + 10.0 * 8.0 * (with_head(1000) - 1000) as f64),
            bufsize: Some(2.0 * 9_600.0),
        };
        let mut control = RateController::new(peak, fps, 0);
        let (chosen, _) = run(&mut control, &[500, 1000, 2000], 10);
        assert!(chosen.iter().all(|&t| t != 2), "{chosen:?}");
        assert_eq!(control.overflows(), 0);
        // Without the limit the same target mixes in the large tool.
        let mut free = RateController::new(target(120_000.0), fps, 0);
        assert!(run(&mut free, &[500, 1000, 2000], 10).0.contains(&2));
    }
}
