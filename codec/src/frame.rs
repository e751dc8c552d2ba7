//! RGB frames, and padding them to a coder's stride.

/// One 8-bit RGB frame, packed `R, G, B` per pixel, rows top to bottom, no row padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbFrame {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbFrame {
    /// A black frame.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            data: vec![0; 3 * width as usize * height as usize],
        }
    }

    /// Wraps packed RGB data; `None` if its length does not match the size.
    pub fn from_data(width: u32, height: u32, data: Vec<u8>) -> Option<Self> {
        (data.len() == 3 * width as usize * height as usize).then_some(Self {
            width,
            height,
            data,
        })
    }

    pub fn pixels(&self) -> usize {
        self.width as usize * self.height as usize
    }

    /// The frame padded to `width`×`height` by repeating its last column and row.
    pub fn padded(&self, width: u32, height: u32) -> RgbFrame {
        assert!(
            width >= self.width && height >= self.height,
            "padding cannot shrink a frame"
        );
        if width == self.width && height == self.height {
            return self.clone();
        }
        let (sw, dw) = (3 * self.width as usize, 3 * width as usize);
        let mut out = RgbFrame::new(width, height);
        for y in 0..height as usize {
            let src = &self.data[y.min(self.height as usize - 1) * sw..][..sw];
            let dst = &mut out.data[y * dw..][..dw];
            dst[..sw].copy_from_slice(src);
            let last = [src[sw - 3], src[sw - 2], src[sw - 1]];
            for px in dst[sw..].chunks_exact_mut(3) {
                px.copy_from_slice(&last);
            }
        }
        out
    }

    /// The top-left `width`×`height` part of the frame.
    pub fn cropped(&self, width: u32, height: u32) -> RgbFrame {
        assert!(
            width <= self.width && height <= self.height,
            "cropping cannot grow a frame"
        );
        if width == self.width && height == self.height {
            return self.clone();
        }
        let (sw, dw) = (3 * self.width as usize, 3 * width as usize);
        let mut data = Vec::with_capacity(dw * height as usize);
        for row in self.data.chunks_exact(sw).take(height as usize) {
            data.extend_from_slice(&row[..dw]);
        }
        RgbFrame {
            width,
            height,
            data,
        }
    }
}

/// `value` rounded up to a multiple of `stride`.
pub fn round_up(value: u32, stride: u32) -> u32 {
    value.div_ceil(stride) * stride
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_then_crop_is_identity_and_pads_with_edges() {
        let data: Vec<u8> = (0..3 * 5 * 3).map(|i| i as u8).collect();
        let f = RgbFrame::from_data(5, 3, data).unwrap();
        let p = f.padded(8, 4);
        assert_eq!(p.cropped(5, 3), f);
        // Last row repeats row 2; last columns repeat column 4.
        assert_eq!(&p.data[3 * 8 * 3..3 * 8 * 3 + 15], &f.data[2 * 15..3 * 15]);
        assert_eq!(&p.data[3 * 7..3 * 8], &f.data[12..15]);
    }
}
