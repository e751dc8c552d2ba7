//! Packing training pictures into a corpus file (`aetrain pack`): sampled frames, optionally
//! cut into random crops, thinned evenly until the PNGs fit a byte budget.

use std::path::PathBuf;

use aecodec::RgbFrame;

use crate::corpus::{encode_png, CorpusHeader, CorpusSource, PictureEntry};
use crate::data::{sample_frames, DataError, FrameSampling, Rng};

/// How to pack.
#[derive(Debug, Clone, Copy)]
pub struct PackOptions {
    pub sampling: FrameSampling,
    /// Cut each frame into `crops_per_frame` random squares of this side; `None` keeps whole
    /// frames. A frame smaller than a crop is kept whole (training skips what is smaller than
    /// its own crop).
    pub crop: Option<u32>,
    pub crops_per_frame: usize,
    /// The pictures' PNGs together stay within this many bytes (pictures are dropped evenly
    /// across the whole corpus, in order, until they do).
    pub max_bytes: u64,
    pub seed: u64,
}

/// A corpus ready to write ([`crate::corpus::write`]).
pub struct PackedCorpus {
    pub header: CorpusHeader,
    pub pngs: Vec<Vec<u8>>,
    /// Pictures cut before the byte budget thinned them.
    pub offered: usize,
    /// Frames kept whole for being smaller than the crop.
    pub kept_whole: usize,
}

/// The `side`×`side` square of `frame` whose top-left corner is (x0, y0).
pub fn crop_square(frame: &RgbFrame, x0: usize, y0: usize, side: usize) -> RgbFrame {
    let w = frame.width as usize;
    let mut data = Vec::with_capacity(3 * side * side);
    for y in y0..y0 + side {
        data.extend_from_slice(&frame.data[3 * (y * w + x0)..3 * (y * w + x0 + side)]);
    }
    RgbFrame::from_data(side as u32, side as u32, data).expect("a square inside the frame")
}

/// Reads `clips` (videos or packed corpora) and packs their pictures. `progress` is told each
/// clip's name and how many pictures it gave.
pub fn pack(
    clips: &[PathBuf],
    options: &PackOptions,
    command: String,
    mut progress: impl FnMut(&str, usize),
) -> Result<PackedCorpus, DataError> {
    let mut rng = Rng(options.seed ^ 0x2545_f491_4f6c_dd1d);
    let mut pictures: Vec<(u32, u32, u32, Vec<u8>)> = Vec::new();
    let mut kept_whole = 0;
    for (source, clip) in clips.iter().enumerate() {
        let before = pictures.len();
        sample_frames(clip, options.sampling, |frame| {
            let (w, h) = (frame.width as usize, frame.height as usize);
            let whole =
                |frame: &RgbFrame| (source as u32, frame.width, frame.height, encode_png(frame));
            let Some(side) = options.crop.map(|c| c as usize) else {
                pictures.push(whole(frame));
                return;
            };
            if w < side || h < side {
                kept_whole += 1;
                pictures.push(whole(frame));
                return;
            }
            for _ in 0..options.crops_per_frame.max(1) {
                let (x0, y0) = (rng.below(w - side + 1), rng.below(h - side + 1));
                let square = crop_square(frame, x0, y0, side);
                pictures.push((source as u32, side as u32, side as u32, encode_png(&square)));
            }
        })?;
        progress(&clip.display().to_string(), pictures.len() - before);
    }
    let offered = pictures.len();
    let kept = thin_to_budget(
        &pictures
            .iter()
            .map(|p| p.3.len() as u64)
            .collect::<Vec<_>>(),
        options.max_bytes,
    );
    let mut sources: Vec<CorpusSource> = clips
        .iter()
        .map(|c| CorpusSource {
            path: c.display().to_string(),
            pictures: 0,
        })
        .collect();
    let (mut entries, mut pngs) = (Vec::new(), Vec::new());
    for i in kept {
        let (source, width, height, png) = std::mem::take(&mut pictures[i]);
        sources[source as usize].pictures += 1;
        entries.push(PictureEntry {
            source,
            width,
            height,
            bytes: png.len() as u64,
        });
        pngs.push(png);
    }
    Ok(PackedCorpus {
        header: CorpusHeader {
            sources,
            pictures: entries,
            command,
        },
        pngs,
        offered,
        kept_whole,
    })
}

/// The indices of an evenly spaced subset of items (in order) whose sizes add up to at most
/// `budget`: all of them when they fit.
pub fn thin_to_budget(sizes: &[u64], budget: u64) -> Vec<usize> {
    let n = sizes.len();
    let total: u64 = sizes.iter().sum();
    if total <= budget {
        return (0..n).collect();
    }
    // Start from the count the average size allows and step down until the chosen fit.
    let mut keep = ((n as u128 * u128::from(budget)) / u128::from(total.max(1))) as usize;
    loop {
        let chosen: Vec<usize> = (0..keep).map(|i| i * n / keep.max(1)).collect();
        if chosen.iter().map(|&i| sizes[i]).sum::<u64>() <= budget {
            return chosen;
        }
        keep -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_an_even_subset_within_the_budget() {
        let sizes: Vec<u64> = (0..100).map(|i| 10 + (i % 7)).collect();
        assert_eq!(thin_to_budget(&sizes, 10_000).len(), 100);
        let kept = thin_to_budget(&sizes, 500);
        let used: u64 = kept.iter().map(|&i| sizes[i]).sum();
        assert!(used <= 500 && used > 400, "{used}");
        assert!(
            kept.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] <= 3),
            "{kept:?}"
        );
        assert!(thin_to_budget(&sizes, 5).is_empty());
    }

    #[test]
    fn a_crop_is_the_square_it_names() {
        let data: Vec<u8> = (0..3 * 5 * 4).map(|i| i as u8).collect();
        let frame = RgbFrame::from_data(5, 4, data).unwrap();
        let sq = crop_square(&frame, 2, 1, 2);
        let px = |f: &RgbFrame, x: usize, y: usize| f.data[3 * (y * f.width as usize + x)];
        assert_eq!(px(&sq, 0, 0), px(&frame, 2, 1));
        assert_eq!(px(&sq, 1, 1), px(&frame, 3, 2));
    }
}
