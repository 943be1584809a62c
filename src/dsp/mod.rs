//! Pure signal processing: the streaming STFT, the pitch filter, the deep filter, the
//! lookahead delay and the application of model gains.
//!
//! Rules of this room: every buffer and FFT plan is allocated in `new()`; `reset()` only
//! zeroes; per-hop methods take slices, `debug_assert!` their lengths and never allocate,
//! lock or log, so the same code runs on the live worker thread and in offline cleaning.
//! Float audio is in [-1, 1] at every boundary.

pub mod deep_filter;
pub mod gain;
pub mod lookahead;
pub mod pitch;
pub mod stft;

pub use deep_filter::{DeepFilter, DeepFilterShape};
pub use gain::{GainParams, apply_gain_stage, apply_gains, apply_gains_filtered};
pub use lookahead::LookaheadDelay;
pub use pitch::PitchFilter;
pub use stft::{FFT_SIZE, HOP_SIZE, N_BINS, SAMPLE_RATE_HZ, Stft};
