//! Whole-clip sample-rate conversion with rubato's FFT resampler (offline only: it
//! allocates). `process_all` trims rubato's own delay, so sample i of the output lines up
//! with sample i * ratio of the input.

use rubato::audioadapter_buffers::direct::SequentialSlice;
use rubato::{Fft, FixedSync, Resampler};

/// Resample one channel from `from_hz` to `to_hz`; returns exactly
/// `round(len * to_hz / from_hz)` samples.
pub fn resample(x: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, String> {
    if from_hz == to_hz {
        return Ok(x.to_vec());
    }
    let mut r = Fft::<f32>::new(from_hz as usize, to_hz as usize, 1024, 1, FixedSync::Both)
        .map_err(|e| format!("cannot resample {from_hz} Hz -> {to_hz} Hz: {e}"))?;
    let input = SequentialSlice::new(x, 1, x.len()).map_err(|e| e.to_string())?;
    let out = r
        .process_all(&input, x.len(), None)
        .map_err(|e| e.to_string())?;
    let mut y = out.take_data();
    let want = (x.len() as u64 * to_hz as u64 + from_hz as u64 / 2) / from_hz as u64;
    y.resize(want as usize, 0.0);
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

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
