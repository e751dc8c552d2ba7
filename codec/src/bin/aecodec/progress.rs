//! Progress bars, interrupts and stream errors, as every long command reports them.

use std::ops::ControlFlow;

use aecodec::pipeline::StreamError;
use indicatif::{ProgressBar, ProgressStyle};

pub(crate) fn progress_bar(len: Option<u64>, what: &str) -> ProgressBar {
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} frames ({per_sec}, eta {eta})",
        )
        .expect("valid template"),
    );
    bar.set_message(what.to_string());
    bar
}

/// A stream the user stopped (Ctrl-C, SIGTERM) is not an error worth a cause chain.
pub(crate) fn stream_error<E: std::error::Error + Send + Sync + 'static>(
    e: StreamError<E>,
) -> anyhow::Error {
    match e {
        StreamError::Stopped(_) => anyhow::anyhow!("interrupted; no output was written"),
        e => anyhow::Error::new(e),
    }
}

/// Stops a stream at Ctrl-C or SIGTERM; the unfinished output's temporary file is removed
/// ([`aecodec::output::handle_interrupts`]).
pub(crate) fn until_interrupted(bar: &ProgressBar) -> ControlFlow<()> {
    bar.inc(1);
    if aecodec::output::interrupted() {
        ControlFlow::Break(())
    } else {
        ControlFlow::Continue(())
    }
}
