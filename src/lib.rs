//! denoised: a real-time speech denoiser for Linux.
//!
//! Rooms: `dsp` (STFT and gains, allocation-free after `new`), `model` (the ONNX model,
//! its contract and the runtime), `stream` (one stream's hop-by-hop denoiser), `offline`
//! (WAV files), `bench` (speed), `tap` (`run --tap`'s recordings), `cli`/`config` (what
//! the user typed / validated settings), `app` (runs a command).

pub mod app;
pub mod audio;
pub mod bench;
pub mod cli;
pub mod config;
pub mod control;
pub mod dsp;
pub mod error;
pub mod live;
pub mod model;
pub mod offline;
pub mod rate;
pub mod rt;
pub mod service;
pub mod stream;
pub mod tap;
pub mod worker;

pub use error::{Error, Result};
