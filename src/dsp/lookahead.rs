//! The lookahead delay. A model whose contract declares `lookahead_frames` = L hears the
//! input up to frame t before it gives the gains of frame t - L (DeepFilterNet's
//! lookahead): the gains returned with frame t belong to the frame L hops older. This keeps
//! the last L analysed spectra and their input hops, so that the gain stage gets the frame
//! the gains belong to, and the pitch filter the input hop that frame ends with.
//!
//! It adds L hops (L x 10 ms) of latency; L = 0 is a pass-through. Allocates in `new()`
//! only; `exchange` swaps slices in place.

use realfft::num_complex::Complex32;

use super::stft::{HOP_SIZE, N_BINS};

pub struct LookaheadDelay {
    frames: usize,
    /// `frames` spectra of N_BINS, a ring; slot `oldest` holds the frame `frames` hops back
    spectra: Vec<Complex32>,
    /// the input hop of each slot's frame
    hops: Vec<f32>,
    oldest: usize,
}

impl LookaheadDelay {
    pub fn new(frames: usize) -> Self {
        Self {
            frames,
            spectra: vec![Complex32::default(); frames * N_BINS],
            hops: vec![0.0; frames * HOP_SIZE],
            oldest: 0,
        }
    }

    /// The delay this adds, in samples at 48 kHz.
    pub fn latency_samples(&self) -> usize {
        self.frames * HOP_SIZE
    }

    /// Forget the history: the frames before the next one count as silence, as they do at
    /// the start of a stream.
    pub fn reset(&mut self) {
        self.spectra.fill(Complex32::default());
        self.hops.fill(0.0);
        self.oldest = 0;
    }

    /// Give in the newest frame (`spec`, and the input `hop` it ends with) and get back, in
    /// the same slices, the frame `frames` hops older: the one the newest gains belong to.
    pub fn exchange(&mut self, spec: &mut [Complex32], hop: &mut [f32]) {
        debug_assert_eq!(spec.len(), N_BINS);
        debug_assert_eq!(hop.len(), HOP_SIZE);
        if self.frames == 0 {
            return;
        }
        let i = self.oldest;
        self.spectra[i * N_BINS..(i + 1) * N_BINS].swap_with_slice(spec);
        self.hops[i * HOP_SIZE..(i + 1) * HOP_SIZE].swap_with_slice(hop);
        self.oldest = (i + 1) % self.frames;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(t: usize) -> (Vec<Complex32>, Vec<f32>) {
        let v = t as f32 + 1.0;
        (vec![Complex32::new(v, -v); N_BINS], vec![v; HOP_SIZE])
    }

    #[test]
    fn exchange_returns_the_frame_from_lookahead_hops_ago_and_silence_before_the_start() {
        for frames in 0..4 {
            let mut d = LookaheadDelay::new(frames);
            assert_eq!(d.latency_samples(), frames * HOP_SIZE);
            for t in 0..10 {
                let (mut spec, mut hop) = frame(t);
                d.exchange(&mut spec, &mut hop);
                let (want_spec, want_hop) = if t >= frames {
                    frame(t - frames)
                } else {
                    (vec![Complex32::default(); N_BINS], vec![0.0; HOP_SIZE])
                };
                assert_eq!((spec, hop), (want_spec, want_hop), "L={frames} t={t}");
            }
        }
    }

    #[test]
    fn reset_brings_back_the_silent_start() {
        let mut d = LookaheadDelay::new(2);
        for t in 0..5 {
            let (mut s, mut h) = frame(t);
            d.exchange(&mut s, &mut h);
        }
        d.reset();
        let (mut s, mut h) = frame(7);
        d.exchange(&mut s, &mut h);
        assert!(s.iter().all(|c| c.re == 0.0 && c.im == 0.0) && h.iter().all(|&x| x == 0.0));
    }
}
