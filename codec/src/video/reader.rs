//! Reading any video FFmpeg understands as RGB frames.

use std::path::Path;

use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;

use super::{frame_from_ffmpeg, init_ffmpeg, VideoError};
use crate::container::Rational;
use crate::RgbFrame;

/// What the reader knows about the stream before decoding it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    /// Constant frame rate the stream is treated as.
    pub frame_rate: Rational,
    /// Frame count from the container, when it states one.
    pub frame_count_hint: Option<u64>,
}

/// Decodes the best video stream of a file to RGB frames, one at a time, at the constant
/// rate [`VideoInfo::frame_rate`]: a variable-frame-rate source is resampled to it by its
/// timestamps, as FFmpeg's `-vsync cfr` does (a frame is repeated for every output time it
/// covers, and dropped if the next frame takes its place before any), so the frames keep
/// the source's timing.
pub struct VideoReader {
    path: String,
    input: ff::format::context::Input,
    decoder: ff::decoder::Video,
    stream_index: usize,
    /// Seconds per timestamp tick.
    time_base: f64,
    /// Whether frames are placed by their timestamps (the stream states a rate), or given out
    /// one per frame time as decoded.
    resample: bool,
    info: VideoInfo,
    scaler: Option<(scaling::Context, Pixel, u32, u32)>,
    decoded: ff::frame::Video,
    rgb: ff::frame::Video,
    draining: bool,
    /// The first frame's timestamp, in seconds.
    start_time: Option<f64>,
    /// The frame decoded last, not yet given out, and the output slot it starts at.
    held: Option<(RgbFrame, u64)>,
    /// Frames ready to give out, each with how many times in a row.
    ready: std::collections::VecDeque<(RgbFrame, u64)>,
}

/// The longest run of repeated frames a timestamp gap may make: a longer gap is taken as a
/// broken timestamp, not a still picture.
const MAX_GAP_S: f64 = 60.0;

/// A rational with terms the container accepts (≤ 1,000,000), as close as possible.
fn container_rational(r: ff::Rational) -> Option<Rational> {
    let (mut num, mut den) = (i64::from(r.numerator()), i64::from(r.denominator()));
    if num <= 0 || den <= 0 {
        return None;
    }
    while num > 1_000_000 || den > 1_000_000 {
        num = (num + 1) / 2;
        den = (den + 1) / 2;
    }
    Some(Rational::new(num as u32, den as u32))
}

impl VideoReader {
    /// Opens `path`; the error carries FFmpeg's reason when it cannot be read.
    pub fn open(path: &Path) -> Result<Self, VideoError> {
        init_ffmpeg();
        let shown = path.display().to_string();
        let open_err = |e: ff::Error| VideoError::Open {
            path: shown.clone(),
            reason: e.to_string(),
        };
        let input = ff::format::input(&path).map_err(open_err)?;
        let stream = input
            .streams()
            .best(ff::media::Type::Video)
            .ok_or_else(|| VideoError::NoVideoStream {
                path: shown.clone(),
            })?;
        let stream_index = stream.index();
        let time_base = f64::from(stream.time_base());
        // A stated average rate is trusted. Without one, FFmpeg's guess (r_frame_rate) is
        // only the timestamps' unit when that is all it has (1000/1 for Matroska's
        // milliseconds): then the frames are taken one per frame time as they come, not
        // resampled to a rate nobody stated.
        let stated = container_rational(stream.avg_frame_rate()).filter(|r| r.as_f64() <= 1000.0);
        let guessed = container_rational(stream.rate())
            .filter(|r| r.as_f64() <= 1000.0 && (r.as_f64() * time_base - 1.0).abs() > 1e-9);
        let resample = stated.or(guessed).is_some();
        let frame_rate = stated
            .or(guessed)
            .or_else(|| container_rational(stream.rate()).filter(|r| r.as_f64() <= 1000.0))
            .unwrap_or(Rational::new(25, 1));
        let frame_count_hint = u64::try_from(stream.frames()).ok().filter(|&n| n > 0);
        let context =
            ff::codec::context::Context::from_parameters(stream.parameters()).map_err(open_err)?;
        let decoder = context.decoder().video().map_err(open_err)?;
        let (width, height) = (decoder.width(), decoder.height());
        if width == 0 || height == 0 {
            return Err(VideoError::Open {
                path: shown,
                reason: "video stream has no size".into(),
            });
        }
        Ok(Self {
            path: shown,
            input,
            decoder,
            stream_index,
            time_base,
            resample,
            info: VideoInfo {
                width,
                height,
                frame_rate,
                frame_count_hint,
            },
            scaler: None,
            decoded: ff::frame::Video::empty(),
            rgb: ff::frame::Video::empty(),
            draining: false,
            start_time: None,
            held: None,
            ready: std::collections::VecDeque::new(),
        })
    }

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// Scales every frame from here on to `width`×`height` (bilinear, as FFmpeg's `scale`
    /// filter), for renditions of a ladder; [`info`](Self::info) then gives that size.
    pub fn scale_to(&mut self, width: u32, height: u32) {
        self.info.width = width;
        self.info.height = height;
        self.scaler = None;
    }

    fn decode_err(&self, e: ff::Error) -> VideoError {
        VideoError::Decode {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    /// The next frame at the constant rate, or `None` at the end of the stream.
    pub fn next_frame(&mut self) -> Result<Option<RgbFrame>, VideoError> {
        loop {
            if let Some((frame, times)) = self.ready.front_mut() {
                if *times > 1 {
                    *times -= 1;
                    return Ok(Some(frame.clone()));
                }
                return Ok(self.ready.pop_front().map(|(frame, _)| frame));
            }
            match self.next_decoded()? {
                Some((frame, time)) => self.place(frame, time),
                None => match self.held.take() {
                    Some((frame, _)) => self.ready.push_back((frame, 1)),
                    None => return Ok(None),
                },
            }
        }
    }

    /// Puts a decoded frame with its timestamp (seconds) on the constant-rate timeline: the
    /// frame held before it is given out once for each output slot before this one's.
    fn place(&mut self, frame: RgbFrame, time: Option<f64>) {
        let rate = self.info.frame_rate.as_f64();
        let Some((held, held_slot)) = self.held.take() else {
            self.start_time = time;
            self.held = Some((frame, 0));
            return;
        };
        let slot = match (time, self.start_time) {
            (Some(t), Some(t0)) if self.resample => {
                let ideal = ((t - t0) * rate).round();
                let limit = held_slot as f64 + (MAX_GAP_S * rate).max(1.0);
                ideal.clamp(held_slot as f64, limit) as u64
            }
            // No timestamp: the next slot.
            _ => held_slot + 1,
        };
        if slot > held_slot {
            self.ready.push_back((held, slot - held_slot));
        }
        // A frame whose slot the next one takes is dropped.
        self.held = Some((frame, slot));
    }

    /// The next decoded frame in presentation order with its timestamp in seconds.
    fn next_decoded(&mut self) -> Result<Option<(RgbFrame, Option<f64>)>, VideoError> {
        loop {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => {
                    let time = self.decoded.timestamp().map(|t| t as f64 * self.time_base);
                    return Ok(Some((self.convert()?, time)));
                }
                Err(ff::Error::Eof) => return Ok(None),
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {}
                Err(e) => return Err(self.decode_err(e)),
            }
            if self.draining {
                return Ok(None);
            }
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() == self.stream_index => {
                    if let Err(e) = self.decoder.send_packet(&packet) {
                        return Err(self.decode_err(e));
                    }
                }
                Ok(()) => {}
                Err(ff::Error::Eof) => {
                    self.draining = true;
                    self.decoder.send_eof().map_err(|e| self.decode_err(e))?;
                }
                Err(e) => return Err(self.decode_err(e)),
            }
        }
    }

    /// Converts the decoded frame to packed RGB at the stream's size (a stream whose size
    /// changes midway is scaled back to its first size).
    fn convert(&mut self) -> Result<RgbFrame, VideoError> {
        let (fmt, w, h) = (
            self.decoded.format(),
            self.decoded.width(),
            self.decoded.height(),
        );
        let stale = !matches!(&self.scaler, Some((_, f, sw, sh)) if (*f, *sw, *sh) == (fmt, w, h));
        if stale {
            let flags = scaling::Flags::BILINEAR
                | scaling::Flags::ACCURATE_RND
                | scaling::Flags::FULL_CHR_H_INT;
            let ctx = scaling::Context::get(
                fmt,
                w,
                h,
                Pixel::RGB24,
                self.info.width,
                self.info.height,
                flags,
            )
            .map_err(|e| self.decode_err(e))?;
            self.scaler = Some((ctx, fmt, w, h));
        }
        let (scaler, ..) = self.scaler.as_mut().expect("scaler was just built");
        scaler
            .run(&self.decoded, &mut self.rgb)
            .map_err(|e| VideoError::Decode {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        Ok(frame_from_ffmpeg(&self.rgb))
    }
}
