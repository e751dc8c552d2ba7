//! aeplay: plays `.aez` streams.
//!
//! Playback is a pipeline of threads joined by bounded channels, so a slow stage slows the
//! ones before it instead of filling memory:
//!
//! * [`source`]: bytes from a file or URL become checked packets;
//! * entropy decoding: packets become latents, and synthesis: latents become RGB frames,
//!   each on its own thread so that frame n+1 is parsed while frame n is synthesized (the
//!   codec's [`FrameDecoder`]);
//! * [`presenter`]: frames are paced at the video's rate (late ones dropped) and handed to an
//!   output: a y4m file or pipe, or nothing (`--null`).
//!
//! [`stream`] runs these stages over one stream; a ladder's manifest plays through
//! [`adaptive`]: the same stages with a fetcher in front that picks each segment's rendition.
//! What both share (options, errors, the model store, the stage runner) is [`playback`].
//!
//! [`server`] is `aeplay serve`; it also serves [`web`], the browser player (the same decoder
//! built for WebAssembly, in `player/web`).
//!
//! [`FrameDecoder`]: aecodec::pipeline::FrameDecoder

pub mod adaptive;
pub mod control;
pub mod http;
pub mod playback;
pub mod presenter;
pub mod server;
pub mod source;
pub mod stream;
pub mod web;
#[cfg(feature = "window")]
mod window;

pub use control::{Control, Output};
pub use playback::{AdaptiveOptions, PlayError, PlayOptions};
pub use presenter::{PlaybackStats, Presenter};
pub use source::open_source;

/// What came out of playback: statistics, and the stream damage if the source ended early
/// (frames before it were all played).
pub struct PlayOutcome {
    pub stats: PlaybackStats,
    pub damage: Option<source::SourceError>,
    /// For a ladder: the renditions played and the switches between them.
    pub adaptive: Option<adaptive::AdaptiveStats>,
}

/// Plays `source` to the chosen output: an `.aez` file or URL, or a ladder's manifest
/// (`.json`), which plays adaptively.
pub fn play(source: &str, options: &PlayOptions) -> Result<PlayOutcome, PlayError> {
    if adaptive::is_manifest(source) {
        let played = adaptive::play_ladder(source, options)?;
        return Ok(PlayOutcome {
            stats: played.stats,
            damage: played.damage,
            adaptive: Some(played.adaptive),
        });
    }
    let played = stream::play_stream(source, options)?;
    Ok(PlayOutcome {
        stats: played.stats,
        damage: played.damage,
        adaptive: None,
    })
}
