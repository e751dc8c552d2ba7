//! The window output (cargo feature `window`): frames in a minifb window on X11.
//! Space pauses, left and right arrows seek 5 seconds, Esc or closing the window quits.

use std::time::{Duration, Instant};

use aecodec::video::VideoError;
use aecodec::RgbFrame;
use minifb::{Key, KeyRepeat, Window, WindowOptions};

use crate::control::Control;

/// Seconds one arrow press moves.
const SEEK_STEP: f64 = 5.0;

pub struct WindowSink {
    window: Window,
    buffer: Vec<u32>,
}

fn window_error(e: minifb::Error) -> VideoError {
    VideoError::Io(std::io::Error::other(format!("window: {e}")))
}

impl WindowSink {
    pub fn open(width: u32, height: u32) -> Result<Self, VideoError> {
        let options = WindowOptions {
            resize: true,
            ..WindowOptions::default()
        };
        let window = Window::new(
            "aeplay (space: pause, arrows: seek, Esc: quit)",
            width as usize,
            height as usize,
            options,
        )
        .map_err(window_error)?;
        Ok(Self {
            window,
            buffer: vec![0; width as usize * height as usize],
        })
    }

    /// The viewer's keys since the last look, if any asks for something.
    fn keys(&self, seconds: f64) -> Option<Control> {
        if !self.window.is_open() || self.window.is_key_down(Key::Escape) {
            return Some(Control::Quit);
        }
        if self.window.is_key_pressed(Key::Left, KeyRepeat::Yes) {
            return Some(Control::Seek((seconds - SEEK_STEP).max(0.0)));
        }
        if self.window.is_key_pressed(Key::Right, KeyRepeat::Yes) {
            return Some(Control::Seek(seconds + SEEK_STEP));
        }
        None
    }

    /// Shows a frame; returns what the viewer asked for and how long playback was paused.
    pub fn show(
        &mut self,
        frame: &RgbFrame,
        seconds: f64,
    ) -> Result<(Control, Duration), VideoError> {
        for (px, rgb) in self.buffer.iter_mut().zip(frame.data.chunks_exact(3)) {
            *px = u32::from(rgb[0]) << 16 | u32::from(rgb[1]) << 8 | u32::from(rgb[2]);
        }
        self.window
            .update_with_buffer(&self.buffer, frame.width as usize, frame.height as usize)
            .map_err(window_error)?;
        if let Some(control) = self.keys(seconds) {
            return Ok((control, Duration::ZERO));
        }
        if !self.window.is_key_pressed(Key::Space, KeyRepeat::No) {
            return Ok((Control::Continue, Duration::ZERO));
        }
        let paused = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(15));
            self.window.update();
            if let Some(control) = self.keys(seconds) {
                return Ok((control, paused.elapsed()));
            }
            if self.window.is_key_pressed(Key::Space, KeyRepeat::No) {
                return Ok((Control::Continue, paused.elapsed()));
            }
        }
    }
}
