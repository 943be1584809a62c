//! Whole-clip sample-rate conversion with rubato's FFT resampler (offline only: it
//! allocates). Sample i of the output lines up with time i / to_hz of the input.
//!
//! `process_all` trims rubato's own delay, but for some ratios and lengths the result
//! sits a fraction of a sample (or a few samples) off: 48 kHz -> 8 kHz half a sample
//! late, 44.1 kHz -> 48 kHz about half a sample early. So each call also resamples a
//! smooth probe pulse of the same length, measures where it lands, and removes the
//! residual with an exact band-limited fractional delay (a linear phase in frequency).

use realfft::RealFftPlanner;
use realfft::num_complex::Complex32;
use rubato::audioadapter_buffers::direct::SequentialSlice;
use rubato::{Fft, FixedSync, Resampler};

fn rubato_resample(x: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, String> {
    let mut r = Fft::<f32>::new(from_hz as usize, to_hz as usize, 1024, 1, FixedSync::Both)
        .map_err(|e| format!("cannot resample {from_hz} Hz -> {to_hz} Hz: {e}"))?;
    let input = SequentialSlice::new(x, 1, x.len()).map_err(|e| e.to_string())?;
    Ok(r.process_all(&input, x.len(), None)
        .map_err(|e| e.to_string())?
        .take_data())
}

/// Where rubato puts a pulse in a clip of `len` samples, minus where it belongs, in
/// output samples.
fn residual_offset(len: usize, from_hz: u32, to_hz: u32) -> Result<f64, String> {
    let centre = (len / 2) as f64;
    let width = from_hz as f64 / 4000.0; // 0.25 ms: well inside both bands
    let probe: Vec<f32> = (0..len)
        .map(|i| (-((i as f64 - centre) / width).powi(2)).exp() as f32)
        .collect();
    let y = rubato_resample(&probe, from_hz, to_hz)?;
    let (mut m1, mut m0) = (0.0f64, 0.0f64);
    for (i, &v) in y.iter().enumerate() {
        m1 += i as f64 * v as f64;
        m0 += v as f64;
    }
    Ok(m1 / m0 - centre * to_hz as f64 / from_hz as f64)
}

/// Delay `y` by `d` samples (fractional, either sign), band-limited.
fn fractional_delay(y: &mut [f32], d: f64) {
    let n = (y.len() + 1024).next_power_of_two();
    let mut planner = RealFftPlanner::<f32>::new();
    let (fwd, inv) = (planner.plan_fft_forward(n), planner.plan_fft_inverse(n));
    let mut buf = vec![0.0f32; n];
    buf[..y.len()].copy_from_slice(y);
    let mut spec = fwd.make_output_vec();
    let _ = fwd.process(&mut buf, &mut spec);
    for (k, c) in spec.iter_mut().enumerate() {
        let ph = -2.0 * std::f64::consts::PI * k as f64 * d / n as f64;
        *c *= Complex32::new(ph.cos() as f32, ph.sin() as f32);
    }
    let last = spec.len() - 1;
    spec[0].im = 0.0;
    spec[last].im = 0.0;
    let _ = inv.process(&mut spec, &mut buf);
    for (o, b) in y.iter_mut().zip(&buf) {
        *o = b / n as f32;
    }
}

/// Resample one channel from `from_hz` to `to_hz`; returns exactly
/// `round(len * to_hz / from_hz)` samples.
pub fn resample(x: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, String> {
    if from_hz == to_hz {
        return Ok(x.to_vec());
    }
    let mut y = rubato_resample(x, from_hz, to_hz)?;
    let off = residual_offset(x.len().max(64), from_hz, to_hz)?;
    if off.abs() > 1e-3 {
        fractional_delay(&mut y, -off);
    }
    let want = (x.len() as u64 * to_hz as u64 + from_hz as u64 / 2) / from_hz as u64;
    y.resize(want as usize, 0.0);
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sample_i_lines_up_with_input_time_i() {
        for (a, b) in [
            (8000u32, 48000u32),
            (48000, 8000),
            (44100, 48000),
            (48000, 44100),
            (22050, 48000),
            (48000, 22050),
            (16000, 48000),
            (48000, 16000),
            (96000, 48000),
            (48000, 96000),
        ] {
            let x: Vec<f32> = (0..a as usize / 2)
                .map(|n| {
                    (-((n as f64 - a as f64 / 8.0) / (a as f64 / 2000.0)).powi(2)).exp() as f32
                })
                .collect();
            let y = resample(&x, a, b).unwrap();
            let c = y
                .iter()
                .enumerate()
                .map(|(i, v)| i as f64 * *v as f64)
                .sum::<f64>()
                / y.iter().map(|v| *v as f64).sum::<f64>();
            let expected = a as f64 / 8.0 * b as f64 / a as f64;
            assert!(
                (c - expected).abs() < 0.02,
                "{a} -> {b}: pulse at {c:.3}, expected {expected:.3}"
            );
        }
    }

    #[test]
    fn sine_survives_a_round_trip_through_48k() {
        let rate = 44_100;
        let x: Vec<f32> = (0..rate)
            .map(|n| (2.0 * std::f32::consts::PI * 440.0 * n as f32 / rate as f32).sin() * 0.5)
            .collect();
        let up = resample(&x, rate, 48_000).unwrap();
        assert_eq!(up.len(), 48_000);
        let back = resample(&up, 48_000, rate).unwrap();
        assert_eq!(back.len(), x.len());
        // away from the edges the round trip is transparent for an in-band tone
        let err = x[2000..rate as usize - 2000]
            .iter()
            .zip(&back[2000..rate as usize - 2000])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-3, "max error {err}");
    }
}
