//! Streaming short-time Fourier transform: 960-sample sqrt-Hann window, 480-sample hop
//! (10 ms at 48 kHz), 481 bins, perfect reconstruction.
//!
//! Analysis: each hop appends 480 new samples to a 960-sample history, windows it and takes
//! an unnormalised real FFT (the same transform as `torch.stft(center=False)`, which the
//! model was trained on). Synthesis: inverse FFT scaled by 1/N, windowed again and
//! overlap-added. sqrt-Hann squared at 50 % overlap sums to exactly one, so an unmodified
//! spectrum comes back as the input delayed by [`Stft::latency_samples`] (480 samples,
//! 10 ms). A live stream also waits one hop to collect its input, which is the other 10 ms
//! of the 20 ms algorithmic latency quoted for the model.

use std::sync::Arc;

use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

/// The rate every model and the whole DSP chain run at.
pub const SAMPLE_RATE_HZ: u32 = 48_000;
/// Analysis window: 960 samples = 20 ms.
pub const FFT_SIZE: usize = 960;
/// Hop: 480 samples = 10 ms.
pub const HOP_SIZE: usize = 480;
/// Bins of the one-sided spectrum (DC .. Nyquist).
pub const N_BINS: usize = FFT_SIZE / 2 + 1;

/// Periodic Hann window, square-rooted.
pub fn sqrt_hann(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
            w.sqrt() as f32
        })
        .collect()
}

/// One stream's STFT state (analysis history, synthesis overlap) and its FFT plans.
pub struct Stft {
    window: Vec<f32>,
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
    /// last FFT_SIZE input samples, oldest first
    history: Vec<f32>,
    /// overlap-add accumulator, FFT_SIZE samples
    overlap: Vec<f32>,
    time_buf: Vec<f32>,
    scratch_fwd: Vec<Complex32>,
    scratch_inv: Vec<Complex32>,
}

impl Stft {
    pub fn new() -> Self {
        let mut planner = RealFftPlanner::<f32>::new();
        let forward = planner.plan_fft_forward(FFT_SIZE);
        let inverse = planner.plan_fft_inverse(FFT_SIZE);
        let scratch_fwd = forward.make_scratch_vec();
        let scratch_inv = inverse.make_scratch_vec();
        Self {
            window: sqrt_hann(FFT_SIZE),
            forward,
            inverse,
            history: vec![0.0; FFT_SIZE],
            overlap: vec![0.0; FFT_SIZE],
            time_buf: vec![0.0; FFT_SIZE],
            scratch_fwd,
            scratch_inv,
        }
    }

    /// Delay from input to output of `analyze` + `synthesize`, in samples.
    pub fn latency_samples(&self) -> usize {
        FFT_SIZE - HOP_SIZE
    }

    /// Forget the past: the next hop starts from silence.
    pub fn reset(&mut self) {
        self.history.fill(0.0);
        self.overlap.fill(0.0);
    }

    /// Push one hop of input and write the spectrum of the newest window.
    pub fn analyze(&mut self, hop_in: &[f32], spec_out: &mut [Complex32]) {
        debug_assert_eq!(hop_in.len(), HOP_SIZE);
        debug_assert_eq!(spec_out.len(), N_BINS);
        self.history.copy_within(HOP_SIZE.., 0);
        self.history[FFT_SIZE - HOP_SIZE..].copy_from_slice(hop_in);
        for ((t, x), w) in self
            .time_buf
            .iter_mut()
            .zip(&self.history)
            .zip(&self.window)
        {
            *t = x * w;
        }
        // Lengths are fixed at construction, so the only error (wrong length) cannot happen.
        let _ =
            self.forward
                .process_with_scratch(&mut self.time_buf, spec_out, &mut self.scratch_fwd);
    }

    /// Inverse-transform one (modified) spectrum and emit one hop of output.
    /// The spectrum is consumed as scratch space.
    pub fn synthesize(&mut self, spec_in: &mut [Complex32], hop_out: &mut [f32]) {
        debug_assert_eq!(spec_in.len(), N_BINS);
        debug_assert_eq!(hop_out.len(), HOP_SIZE);
        // A real signal has purely real DC and Nyquist bins; realfft rejects anything else.
        spec_in[0].im = 0.0;
        spec_in[N_BINS - 1].im = 0.0;
        let _ =
            self.inverse
                .process_with_scratch(spec_in, &mut self.time_buf, &mut self.scratch_inv);
        let scale = 1.0 / FFT_SIZE as f32;
        for ((o, t), w) in self
            .overlap
            .iter_mut()
            .zip(&self.time_buf)
            .zip(&self.window)
        {
            *o += t * w * scale;
        }
        hop_out.copy_from_slice(&self.overlap[..HOP_SIZE]);
        self.overlap.copy_within(HOP_SIZE.., 0);
        self.overlap[FFT_SIZE - HOP_SIZE..].fill(0.0);
    }

    /// A spectrum buffer of the right size (allocates: call outside the real-time path).
    pub fn make_spectrum(&self) -> Vec<Complex32> {
        self.forward.make_output_vec()
    }
}

impl Default for Stft {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn round_trip_equals_input_delayed_by_reported_latency() {
        let mut stft = Stft::new();
        let input = noise(HOP_SIZE * 200, 1);
        let mut output = vec![0.0; input.len()];
        let mut spec = stft.make_spectrum();
        for (i, o) in input.chunks(HOP_SIZE).zip(output.chunks_mut(HOP_SIZE)) {
            stft.analyze(i, &mut spec);
            stft.synthesize(&mut spec, o);
        }
        let d = stft.latency_samples();
        let max_err = (d..input.len())
            .map(|n| (output[n] - input[n - d]).abs())
            .fold(0.0f32, f32::max);
        assert!(max_err <= 1e-5, "max abs error {max_err}");
        assert!(
            output[..d].iter().all(|x| x.abs() <= 1e-6),
            "output before the latency must be silent"
        );
    }

    #[test]
    fn window_squared_sums_to_one_at_half_overlap() {
        let w = sqrt_hann(FFT_SIZE);
        for n in 0..HOP_SIZE {
            let s = w[n] * w[n] + w[n + HOP_SIZE] * w[n + HOP_SIZE];
            assert!((s - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn reset_forgets_the_past() {
        let mut a = Stft::new();
        let mut b = Stft::new();
        let mut spec = a.make_spectrum();
        let mut out = vec![0.0; HOP_SIZE];
        a.analyze(&noise(HOP_SIZE, 3), &mut spec);
        a.synthesize(&mut spec, &mut out);
        a.reset();
        let x = noise(HOP_SIZE, 4);
        let (mut sa, mut sb) = (a.make_spectrum(), b.make_spectrum());
        a.analyze(&x, &mut sa);
        b.analyze(&x, &mut sb);
        assert_eq!(sa, sb);
    }
}
