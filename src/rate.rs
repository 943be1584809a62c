//! Live sample-rate conversion and clock-drift compensation, for the worker thread.
//!
//! `LiveResampler` wraps rubato's asynchronous sinc resampler with buffers allocated in
//! `new()`; `process_into_buffer` then allocates nothing. The input side converts the
//! capture device's rate to 48 kHz (fixed 480-sample output per hop); the output side
//! converts 48 kHz to the playback device's rate (fixed 480-sample input per hop) and its
//! ratio is trimmed by `DriftController`, which keeps the output ring near its target fill
//! so that two devices with slightly different clocks do not drift apart over hours
//! (the approach of camilladsp's rate controller).

use rubato::audioadapter_buffers::direct::SequentialSlice;
use rubato::{
    Adjustable, Async, FixedAsync, Resampler, SincInterpolationParameters, WindowFunction,
};

use crate::dsp::HOP_SIZE;

/// Largest ratio correction the drift controller may apply: +-0.5 % (5000 ppm), far more
/// than real crystals drift (tens to a few hundred ppm).
pub const MAX_DRIFT_CORRECTION: f64 = 0.005;

pub struct LiveResampler {
    rs: Async<f32>,
    in_buf: Vec<f32>,
    out_buf: Vec<f32>,
}

impl LiveResampler {
    /// `from_hz` -> `to_hz`. `fixed_output`: produce exactly one hop per call (input
    /// side); otherwise consume exactly one hop per call (output side).
    pub fn new(from_hz: u32, to_hz: u32, fixed_output: bool) -> Result<Self, String> {
        let params = SincInterpolationParameters::new(64, WindowFunction::BlackmanHarris2);
        let fixed = if fixed_output {
            FixedAsync::Output
        } else {
            FixedAsync::Input
        };
        let rs = Async::<f32>::new_sinc(
            to_hz as f64 / from_hz as f64,
            1.0 + 2.0 * MAX_DRIFT_CORRECTION,
            &params,
            HOP_SIZE,
            1,
            fixed,
        )
        .map_err(|e| format!("cannot resample {from_hz} Hz -> {to_hz} Hz live: {e}"))?;
        let in_buf = vec![0.0; rs.input_frames_max()];
        let out_buf = vec![0.0; rs.output_frames_max()];
        Ok(Self {
            rs,
            in_buf,
            out_buf,
        })
    }

    /// Input samples the next call needs.
    pub fn input_needed(&self) -> usize {
        self.rs.input_frames_next()
    }

    /// The buffer to fill with `input_needed()` samples before `process`.
    pub fn input_mut(&mut self) -> &mut [f32] {
        let n = self.rs.input_frames_next();
        &mut self.in_buf[..n]
    }

    /// Resample what `input_mut` holds; returns the output samples.
    pub fn process(&mut self) -> &[f32] {
        let n_in = self.rs.input_frames_next();
        let n_out_max = self.out_buf.len();
        let (Ok(input), Ok(mut output)) = (
            SequentialSlice::new(&self.in_buf[..n_in], 1, n_in),
            SequentialSlice::new_mut(&mut self.out_buf[..n_out_max], 1, n_out_max),
        ) else {
            return &[];
        };
        match self.rs.process_into_buffer(&input, &mut output, None) {
            Ok((_, n_out)) => &self.out_buf[..n_out],
            Err(_) => &[],
        }
    }

    /// Trim the ratio by `relative` (1.0 = nominal), ramped over the next chunk.
    pub fn set_relative_ratio(&mut self, relative: f64) {
        let _ = self.rs.set_resample_ratio_relative(relative, true);
    }

    /// Delay this resampler adds, in its output samples.
    pub fn output_delay(&self) -> usize {
        self.rs.output_delay()
    }
}

/// A PI controller from output ring fill to a relative resampling ratio.
pub struct DriftController {
    target: f64,
    smoothed: f64,
    integral: f64,
}

impl DriftController {
    /// `target_fill`: the output ring fill to hold, in samples at the output rate.
    pub fn new(target_fill: usize) -> Self {
        let t = target_fill.max(HOP_SIZE) as f64;
        Self {
            target: t,
            smoothed: t,
            integral: 0.0,
        }
    }

    /// Feed the current fill (once per hop); returns the relative ratio to use.
    /// Fill above target -> produce fewer samples (ratio < 1), and vice versa.
    pub fn update(&mut self, fill: usize) -> f64 {
        // 0.99 per hop = a smoothing time of about one second
        self.smoothed = 0.99 * self.smoothed + 0.01 * fill as f64;
        let error = (self.smoothed - self.target) / self.target;
        self.integral =
            (self.integral + error * 1e-4).clamp(-MAX_DRIFT_CORRECTION, MAX_DRIFT_CORRECTION);
        let correction =
            (-(error * 2e-3) - self.integral).clamp(-MAX_DRIFT_CORRECTION, MAX_DRIFT_CORRECTION);
        1.0 + correction
    }
}
