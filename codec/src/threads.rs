//! How many threads the codec's work may use: the learned kernels split their bands over
//! them, and the encoder codes a bidirectional frame's three sides at once. Results never
//! depend on it.

use std::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets the number of threads (0: one per core, at most 8).
pub fn set_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
}

/// Number of threads: [`set_threads`], else `$AECODEC_THREADS`, else one per core (at most
/// 8).
pub fn threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => std::env::var("AECODEC_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .min(8),
        n => n,
    }
}
