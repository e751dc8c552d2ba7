//! Writing decoded frames: y4m by hand, FFV1 `.mkv` and x264 `.mp4` through FFmpeg.

use std::io::Write;
use std::path::Path;

use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;

use super::{init_ffmpeg, VideoError};
use crate::container::Rational;
use crate::output::AtomicFile;
use crate::pipeline::FrameSink;
use crate::RgbFrame;

/// The kinds of video file a decoder can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// YUV4MPEG2, 4:4:4 full range: the pipe format (`-` means stdout).
    Y4m,
    /// Matroska with lossless FFV1 in planar RGB: exact.
    Ffv1Mkv,
    /// MP4 with x264 (CRF 18): small, for viewing.
    X264Mp4,
}

impl OutputFormat {
    /// Picks the format from the output name: `-`, `.y4m`, `.mkv` or `.mp4`.
    pub fn from_path(path: &Path) -> Result<Self, VideoError> {
        if path.as_os_str() == "-" {
            return Ok(OutputFormat::Y4m);
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("y4m") => Ok(OutputFormat::Y4m),
            Some("mkv") => Ok(OutputFormat::Ffv1Mkv),
            Some("mp4") => Ok(OutputFormat::X264Mp4),
            _ => Err(VideoError::UnknownOutput(path.display().to_string())),
        }
    }
}

/// A video output: frames in, a file (or pipe) out.
pub type VideoSink = Box<dyn FrameSink<Error = VideoError>>;

/// Opens a writer of `format` on `path` (a temporary path for atomic outputs).
pub fn create_writer(
    format: OutputFormat,
    path: &Path,
    width: u32,
    height: u32,
    frame_rate: Rational,
) -> Result<VideoSink, VideoError> {
    match format {
        OutputFormat::Y4m => {
            let file = std::io::BufWriter::new(std::fs::File::create(path)?);
            Ok(Box::new(Y4mWriter::new(file, width, height, frame_rate)))
        }
        OutputFormat::Ffv1Mkv | OutputFormat::X264Mp4 => Ok(Box::new(FfmpegWriter::new(
            format, path, width, height, frame_rate,
        )?)),
    }
}

/// Opens where decoded frames should go: `-` is y4m on standard output; any other path a
/// video file of the format its extension names, written under a temporary name and renamed
/// into place by [`FrameSink::finish`] (dropped unfinished, it leaves nothing). The caller
/// checks first that the path may be written ([`crate::output::check_output`]).
pub fn open_output(
    path: &Path,
    width: u32,
    height: u32,
    frame_rate: Rational,
) -> Result<VideoSink, VideoError> {
    let format = OutputFormat::from_path(path)?;
    if path.as_os_str() == "-" {
        let stdout = std::io::BufWriter::new(std::io::stdout());
        return Ok(Box::new(Y4mWriter::new(stdout, width, height, frame_rate)));
    }
    let file = AtomicFile::create(path)?;
    let inner = create_writer(format, file.temp_path(), width, height, frame_rate)?;
    Ok(Box::new(AtomicSink { inner, file }))
}

/// A video file that appears under its name only once finished.
struct AtomicSink {
    inner: VideoSink,
    file: AtomicFile,
}

impl AtomicSink {
    /// The writers below see only the temporary name; a failure names the output the user
    /// asked for (a full disk says which file it stopped).
    fn name_destination(destination: &Path, e: VideoError) -> VideoError {
        let path = destination.display().to_string();
        match e {
            VideoError::Io(cause) => VideoError::Encode {
                path,
                reason: cause.to_string(),
            },
            VideoError::Encode { reason, .. } => VideoError::Encode { path, reason },
            other => other,
        }
    }
}

impl FrameSink for AtomicSink {
    type Error = VideoError;
    fn write_frame(&mut self, frame: &RgbFrame) -> Result<(), VideoError> {
        self.inner
            .write_frame(frame)
            .map_err(|e| Self::name_destination(self.file.destination(), e))
    }

    fn finish(self: Box<Self>) -> Result<(), VideoError> {
        let Self { inner, file } = *self;
        if let Err(e) = inner.finish() {
            return Err(Self::name_destination(file.destination(), e));
        }
        Ok(file.commit()?)
    }
}

pub(super) fn check_size(frame: &RgbFrame, width: u32, height: u32) -> Result<(), VideoError> {
    if (frame.width, frame.height) != (width, height) {
        return Err(VideoError::FrameSize {
            got_w: frame.width,
            got_h: frame.height,
            want_w: width,
            want_h: height,
        });
    }
    Ok(())
}

/// YUV4MPEG2 4:4:4 writer (full-range BT.601, as JPEG uses), to any byte sink.
pub struct Y4mWriter<W: Write> {
    out: W,
    width: u32,
    height: u32,
    frame_rate: Rational,
    wrote_header: bool,
    planes: Vec<u8>,
}

impl<W: Write> Y4mWriter<W> {
    pub fn new(out: W, width: u32, height: u32, frame_rate: Rational) -> Self {
        Self {
            out,
            width,
            height,
            frame_rate,
            wrote_header: false,
            planes: Vec::new(),
        }
    }

    /// Writes one frame (the stream header before the first).
    pub fn write(&mut self, frame: &RgbFrame) -> Result<(), VideoError> {
        check_size(frame, self.width, self.height)?;
        if !self.wrote_header {
            writeln!(
                self.out,
                "YUV4MPEG2 W{} H{} F{}:{} Ip A1:1 C444 XCOLORRANGE=FULL",
                self.width, self.height, self.frame_rate.num, self.frame_rate.den
            )?;
            self.wrote_header = true;
        }
        let n = frame.pixels();
        self.planes.resize(3 * n, 0);
        let (y, rest) = self.planes.split_at_mut(n);
        let (cb, cr) = rest.split_at_mut(n);
        for (i, px) in frame.data.chunks_exact(3).enumerate() {
            let (r, g, b) = (i32::from(px[0]), i32::from(px[1]), i32::from(px[2]));
            y[i] = ((77 * r + 150 * g + 29 * b + 128) >> 8).clamp(0, 255) as u8;
            cb[i] = (((-43 * r - 85 * g + 128 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
            cr[i] = (((128 * r - 107 * g - 21 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
        }
        self.out.write_all(b"FRAME\n")?;
        self.out.write_all(&self.planes)?;
        Ok(())
    }

    /// Flushes and returns the sink.
    pub fn into_inner(mut self) -> Result<W, VideoError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> FrameSink for Y4mWriter<W> {
    type Error = VideoError;
    fn write_frame(&mut self, frame: &RgbFrame) -> Result<(), VideoError> {
        self.write(frame)
    }

    fn finish(self: Box<Self>) -> Result<(), VideoError> {
        self.into_inner().map(drop)
    }
}

/// Encodes frames with an FFmpeg encoder into a container file.
struct FfmpegWriter {
    path: String,
    output: ff::format::context::Output,
    encoder: ff::encoder::Video,
    scaler: scaling::Context,
    stream_index: usize,
    encoder_time_base: ff::Rational,
    stream_time_base: ff::Rational,
    rgb: ff::frame::Video,
    converted: ff::frame::Video,
    next_pts: i64,
}

impl FfmpegWriter {
    fn new(
        format: OutputFormat,
        path: &Path,
        width: u32,
        height: u32,
        frame_rate: Rational,
    ) -> Result<Self, VideoError> {
        init_ffmpeg();
        let shown = path.display().to_string();
        let err = |e: ff::Error| VideoError::Encode {
            path: shown.clone(),
            reason: e.to_string(),
        };
        let (muxer, codec_name, pixel) = match format {
            OutputFormat::Ffv1Mkv => ("matroska", "ffv1", Pixel::BGRZ),
            // x264's 4:2:0 needs even sizes; odd sizes keep full chroma.
            _ if width.is_multiple_of(2) && height.is_multiple_of(2) => {
                ("mp4", "libx264", Pixel::YUV420P)
            }
            _ => ("mp4", "libx264", Pixel::YUV444P),
        };
        let codec = ff::encoder::find_by_name(codec_name).ok_or_else(|| VideoError::Encode {
            path: shown.clone(),
            reason: format!("FFmpeg has no {codec_name} encoder"),
        })?;
        let mut output = ff::format::output_as(&path, muxer).map_err(err)?;
        let global_header = output
            .format()
            .flags()
            .contains(ff::format::Flags::GLOBAL_HEADER);
        let time_base = ff::Rational::new(frame_rate.den as i32, frame_rate.num as i32);
        let mut encoder = ff::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(err)?;
        encoder.set_width(width);
        encoder.set_height(height);
        encoder.set_format(pixel);
        encoder.set_time_base(time_base);
        encoder.set_frame_rate(Some(ff::Rational::new(
            frame_rate.num as i32,
            frame_rate.den as i32,
        )));
        if global_header {
            encoder.set_flags(ff::codec::Flags::GLOBAL_HEADER);
        }
        let mut options = ff::Dictionary::new();
        if codec_name == "libx264" {
            options.set("crf", "18");
            options.set("preset", "medium");
        }
        let encoder = encoder.open_as_with(codec, options).map_err(err)?;
        let stream_index = {
            let mut stream = output.add_stream(codec).map_err(err)?;
            stream.set_parameters(&encoder);
            stream.set_time_base(time_base);
            // Tag the rate, so that readers (Matroska keeps only millisecond timestamps) need
            // not guess it.
            let rate = ff::Rational::new(frame_rate.num as i32, frame_rate.den as i32);
            stream.set_avg_frame_rate(rate);
            stream.set_rate(rate);
            stream.index()
        };
        output.write_header().map_err(err)?;
        let stream_time_base = output
            .stream(stream_index)
            .expect("stream just added")
            .time_base();
        let scaler = scaling::Context::get(
            Pixel::RGB24,
            width,
            height,
            pixel,
            width,
            height,
            scaling::Flags::BICUBIC | scaling::Flags::ACCURATE_RND | scaling::Flags::FULL_CHR_H_INT,
        )
        .map_err(err)?;
        Ok(Self {
            path: shown,
            output,
            encoder,
            scaler,
            stream_index,
            encoder_time_base: time_base,
            stream_time_base,
            rgb: ff::frame::Video::new(Pixel::RGB24, width, height),
            converted: ff::frame::Video::empty(),
            next_pts: 0,
        })
    }

    fn err(&self, e: ff::Error) -> VideoError {
        VideoError::Encode {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    /// Moves every packet the encoder has ready into the file.
    fn drain(&mut self) -> Result<(), VideoError> {
        let mut packet = ff::Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(self.stream_index);
            // One frame per tick; without a duration MP4 edit lists drop the last frame.
            packet.set_duration(1);
            packet.rescale_ts(self.encoder_time_base, self.stream_time_base);
            packet
                .write_interleaved(&mut self.output)
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}

impl FrameSink for FfmpegWriter {
    type Error = VideoError;
    fn write_frame(&mut self, frame: &RgbFrame) -> Result<(), VideoError> {
        super::copy_to_ffmpeg(frame, &mut self.rgb)?;
        self.scaler
            .run(&self.rgb, &mut self.converted)
            .map_err(|e| self.err(e))?;
        self.converted.set_pts(Some(self.next_pts));
        self.next_pts += 1;
        self.encoder
            .send_frame(&self.converted)
            .map_err(|e| self.err(e))?;
        self.drain()
    }

    fn finish(mut self: Box<Self>) -> Result<(), VideoError> {
        self.encoder.send_eof().map_err(|e| self.err(e))?;
        self.drain()?;
        self.output.write_trailer().map_err(|e| self.err(e))
    }
}
