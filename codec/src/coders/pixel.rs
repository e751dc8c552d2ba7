//! The pixel coder: uniformly quantized samples, left-neighbour DPCM, one fitted table per
//! frame. A simple, honest baseline that needs no model (docs/FORMAT.md, "Pixel").

use super::{CoderError, EncodedFrame, FrameCoder, LatentFrame};
use crate::container::FrameType;
use crate::entropy::{self, CategoricalTable, StreamEnd, SymbolDecoder};
use crate::RgbFrame;

/// Hashed into the header's model id: there is no model file.
pub const MODEL_NAME: &str = "aecodec-pixel-v1";

pub struct PixelCoder {
    step: i32,
    width: u32,
    height: u32,
    stream_end: StreamEnd,
}

impl PixelCoder {
    pub fn new(step: u8, width: u32, height: u32) -> Self {
        Self {
            step: i32::from(step.max(1)),
            width,
            height,
            stream_end: StreamEnd::WRITTEN,
        }
    }

    /// Index of the sample that predicts sample `i` (left, else above), if any.
    #[inline]
    fn predictor(&self, i: usize) -> Option<usize> {
        let row = 3 * self.width as usize;
        if i % row >= 3 {
            Some(i - 3)
        } else if i >= row {
            Some(i - row)
        } else {
            None
        }
    }
}

impl FrameCoder for PixelCoder {
    fn encode(
        &mut self,
        frame: &RgbFrame,
        _frame_type: FrameType,
    ) -> Result<EncodedFrame, CoderError> {
        super::check_frame_size(frame, self.width, self.height)?;
        let s = self.step;
        let q: Vec<i32> = frame
            .data
            .iter()
            .map(|&v| (i32::from(v) + s / 2) / s)
            .collect();
        let residuals: Vec<i32> = (0..q.len())
            .map(|i| q[i] - self.predictor(i).map_or(0, |p| q[p]))
            .collect();
        let table = CategoricalTable::fit(&residuals)?;
        let mut payload = Vec::new();
        table.write(&mut payload);
        let words = entropy::encode_iid(&table, &residuals)?;
        entropy::write_stream(&mut payload, &words, self.stream_end);
        Ok(EncodedFrame {
            frame_type: FrameType::Intra,
            payload,
        })
    }

    fn read_streams_as(&mut self, end: StreamEnd) {
        self.stream_end = end;
    }

    fn parse(&mut self, frame_type: FrameType, payload: &[u8]) -> Result<LatentFrame, CoderError> {
        if frame_type != FrameType::Intra {
            return Err(CoderError::Payload(
                "the pixel coder writes intra frames only".into(),
            ));
        }
        let mut rest = payload;
        let table = CategoricalTable::read(&mut rest)?;
        let mut decoder = SymbolDecoder::new(rest, self.stream_end)?;
        let mut q = vec![0i32; 3 * self.width as usize * self.height as usize];
        for row in q.chunks_mut(3 * self.width as usize) {
            decoder.decode_iid(&table, row);
            decoder.check()?;
        }
        decoder.finish()?;
        let max_q = 255 / self.step + 1;
        for i in 0..q.len() {
            let value = q[i] + self.predictor(i).map_or(0, |p| q[p]);
            // Corrupt data could drift outside any value an encoder makes; clamp so the
            // arithmetic stays bounded.
            q[i] = value.clamp(0, max_q);
        }
        Ok(LatentFrame::plain(q))
    }

    fn synthesize(&mut self, latent: &LatentFrame) -> RgbFrame {
        assert_eq!(
            latent.values.len(),
            3 * self.width as usize * self.height as usize,
            "latent from another coder"
        );
        let data = latent
            .values
            .iter()
            .map(|&v| (v * self.step).clamp(0, 255) as u8)
            .collect();
        RgbFrame {
            width: self.width,
            height: self.height,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_frame() -> RgbFrame {
        let (w, h) = (37, 11);
        let data = (0..3 * w * h)
            .map(|i| ((i * 31 + i / 7) % 256) as u8)
            .collect();
        RgbFrame::from_data(w, h, data).unwrap()
    }

    #[test]
    fn step_one_is_lossless() {
        let f = test_frame();
        let mut c = PixelCoder::new(1, f.width, f.height);
        let e = c.encode(&f, FrameType::Intra).unwrap();
        assert_eq!(c.decode(e.frame_type, &e.payload).unwrap(), f);
    }

    #[test]
    fn coarse_step_bounds_the_error() {
        let f = test_frame();
        let mut c = PixelCoder::new(8, f.width, f.height);
        let e = c.encode(&f, FrameType::Intra).unwrap();
        let d = c.decode(e.frame_type, &e.payload).unwrap();
        for (&a, &b) in f.data.iter().zip(&d.data) {
            assert!((i32::from(a) - i32::from(b)).abs() <= 4, "{a} vs {b}");
        }
    }

    #[test]
    fn truncated_payload_is_an_error_not_a_panic() {
        let f = test_frame();
        let mut c = PixelCoder::new(2, f.width, f.height);
        let e = c.encode(&f, FrameType::Intra).unwrap();
        for cut in [0, 1, 5, e.payload.len() - 1] {
            assert!(
                c.decode(FrameType::Intra, &e.payload[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
}
