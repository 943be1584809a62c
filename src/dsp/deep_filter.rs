//! Deep filtering: the model's complex filter taps over the last few frames of the noisy
//! spectrum, for its low bins (Schröter et al., "Deep Filtering", 2020; DeepFilterNet applies
//! it below 5 kHz).
//!
//! Why: a 20 ms window at 48 kHz gives 50 Hz bins; in voiced speech a bin often holds a
//! harmonic and the noise beside it, and a gain can only scale the two together. Taps over
//! the bin's recent past let the model predict the periodic part and cancel the rest, the
//! job the pitch filter (`dsp::pitch`) does with one fixed comb.
//!
//! What the model declares: an output `df_coefs` [1, T, bins, order, 2] (see
//! `model::contract`); tap `i` of bin `f` multiplies that bin `i` frames ago. The taps filter
//! before the gains, as the pitch filter does, so that where the gains cut, what the taps
//! add is cut too, and a model whose taps are zero is the gains alone:
//! `Y[f] = g[f] * (X'[f] + sum_i c[f][i] * X[t - i][f])`, with X the noisy spectrum and X'
//! what the gains apply to (X, or its pitch-filtered version), g the gain after the
//! attenuation limit. The limit still holds per bin (|Y| >= min_gain * |X|, phase kept) and
//! the wet/dry mix blends with X as for the other bins. Frames before the first count as
//! zero, as in training (`vae.enhance`). Causal: no latency added.
//!
//! Rules of `dsp` hold: the history is allocated in `new()`, `push` and `apply` allocate nothing.

use realfft::num_complex::Complex32;

use super::gain::GainParams;

/// The shape of a model's deep-filter output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeepFilterShape {
    /// Bins 0..bins are filtered.
    pub bins: usize,
    /// Taps per bin: this frame and the `order - 1` before it.
    pub order: usize,
}

/// One stream's deep filter: the last `order` noisy frames of the filtered bins.
pub struct DeepFilter {
    shape: Option<DeepFilterShape>,
    /// `order` frames of `bins` values, a ring; `newest` is the slot of the current frame
    history: Vec<Complex32>,
    newest: usize,
}

impl DeepFilter {
    /// `None`: a model without deep filtering; `push` and `apply` then do nothing.
    pub fn new(shape: Option<DeepFilterShape>) -> Self {
        let len = shape.map_or(0, |s| s.bins * s.order);
        Self {
            shape,
            history: vec![Complex32::default(); len],
            newest: 0,
        }
    }

    /// Values of `df_coefs` per frame (bins * order * 2; 0 without deep filtering).
    pub fn coefs_per_frame(&self) -> usize {
        self.shape.map_or(0, |s| s.bins * s.order * 2)
    }

    /// Causal: adds no delay.
    pub fn latency_samples(&self) -> usize {
        0
    }

    pub fn reset(&mut self) {
        self.history.fill(Complex32::default());
        self.newest = 0;
    }

    /// Record the current frame's noisy spectrum (before any gain). Call once per hop.
    pub fn push(&mut self, noisy: &[Complex32]) {
        let Some(s) = self.shape else { return };
        debug_assert!(noisy.len() >= s.bins);
        self.newest = (self.newest + 1) % s.order;
        let slot = self.newest * s.bins;
        self.history[slot..slot + s.bins].copy_from_slice(&noisy[..s.bins]);
    }

    /// Add the filter's output for this frame, times the bin's gain, to `spec`, which holds
    /// the gain stage's result (`wet * g * X' + (1 - wet) * X`); `coefs` is this frame's
    /// [bins][order][re, im], `gains` the model's. Returns how many bins had a non-finite
    /// tap; those, and bins with a non-finite gain (which the gain stage counts), are left
    /// as the gain stage made them.
    pub fn apply(
        &self,
        spec: &mut [Complex32],
        coefs: &[f32],
        gains: &[f32],
        params: &GainParams,
    ) -> u32 {
        let Some(s) = self.shape else { return 0 };
        debug_assert_eq!(coefs.len(), s.bins * s.order * 2);
        debug_assert!(gains.len() >= s.bins);
        if params.wet <= 0.0 {
            return 0;
        }
        let floor = params.min_gain();
        let mut bad = 0;
        for (f, ((y, taps), &g)) in spec
            .iter_mut()
            .zip(coefs.chunks_exact(s.order * 2))
            .zip(gains)
            .enumerate()
        {
            let mut sum = Complex32::default();
            let mut finite = true;
            for (i, c) in taps.chunks_exact(2).enumerate() {
                finite &= c[0].is_finite() && c[1].is_finite();
                let frame = (self.newest + s.order - i) % s.order;
                sum += Complex32::new(c[0], c[1]) * self.history[frame * s.bins + f];
            }
            if !g.is_finite() {
                continue; // the gain stage passed the bin through and counted it
            }
            if !finite {
                bad += 1;
                continue;
            }
            let x = self.history[self.newest * s.bins + f];
            let dry = x * (1.0 - params.wet);
            // the wet part alone (gains, plus the taps after the gain), held to the limit
            let mut wet_part = (*y - dry) / params.wet + sum * g.clamp(floor, 1.0);
            let (level, least) = (wet_part.norm(), floor * x.norm());
            if level < least {
                wet_part = if level > 0.0 {
                    wet_part * (least / level)
                } else {
                    x * floor
                };
            }
            *y = wet_part * params.wet + dry;
        }
        bad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: DeepFilterShape = DeepFilterShape { bins: 3, order: 4 };
    const ONES: [f32; 5] = [1.0; 5];

    fn frame(t: usize) -> Vec<Complex32> {
        (0..5)
            .map(|k| Complex32::new(t as f32 + 1.0, k as f32 - 2.0))
            .collect()
    }

    /// taps with one (re, im) value at delay `i` for every bin
    fn unit_tap(i: usize, c: Complex32) -> Vec<f32> {
        let mut taps = vec![0.0; SHAPE.bins * SHAPE.order * 2];
        for f in 0..SHAPE.bins {
            taps[(f * SHAPE.order + i) * 2] = c.re;
            taps[(f * SHAPE.order + i) * 2 + 1] = c.im;
        }
        taps
    }

    fn no_limit() -> GainParams {
        GainParams {
            attenuation_limit_db: 200.0,
            ..GainParams::default()
        }
    }

    #[test]
    fn a_unit_tap_at_delay_i_adds_the_frame_from_i_hops_ago() {
        let c = Complex32::new(0.5, -0.25);
        for i in 0..SHAPE.order {
            let mut df = DeepFilter::new(Some(SHAPE));
            for t in 0..7 {
                let x = frame(t);
                df.push(&x);
                let mut y = vec![Complex32::default(); 5];
                df.apply(&mut y, &unit_tap(i, c), &ONES, &no_limit());
                for (k, got) in y.iter().enumerate() {
                    let want = if k < SHAPE.bins && t >= i {
                        frame(t - i)[k] * c
                    } else {
                        Complex32::default()
                    };
                    assert!((got - want).norm() < 1e-6, "delay {i}, t {t}, bin {k}");
                }
            }
        }
    }

    #[test]
    fn zero_taps_leave_the_gains_output_alone_and_dry_is_the_input() {
        let mut df = DeepFilter::new(Some(SHAPE));
        let x = frame(3);
        df.push(&x);
        let gained: Vec<Complex32> = x.iter().map(|c| c * 0.5).collect();
        let mut y = gained.clone();
        df.apply(
            &mut y,
            &unit_tap(0, Complex32::default()),
            &ONES,
            &no_limit(),
        );
        assert_eq!(y, gained);
        let dry = GainParams {
            wet: 0.0,
            ..GainParams::default()
        };
        let mut y = x.clone();
        df.apply(&mut y, &unit_tap(0, Complex32::new(-1.0, 0.0)), &ONES, &dry);
        assert_eq!(y, x);
    }

    #[test]
    fn the_attenuation_limit_holds_when_the_taps_cancel_the_bin() {
        let mut df = DeepFilter::new(Some(SHAPE));
        let x = frame(2);
        df.push(&x);
        let p = GainParams {
            attenuation_limit_db: 20.0,
            ..GainParams::default()
        };
        // gains of 1 and a tap of -1 on the current frame: the wet output would be zero
        let mut y = x.clone();
        df.apply(&mut y, &unit_tap(0, Complex32::new(-1.0, 0.0)), &ONES, &p);
        for k in 0..SHAPE.bins {
            assert!((y[k].norm() - 0.1 * x[k].norm()).abs() < 1e-5, "bin {k}");
        }
    }

    #[test]
    fn the_taps_output_is_scaled_by_the_bins_gain() {
        let mut df = DeepFilter::new(Some(SHAPE));
        df.push(&frame(0));
        df.push(&frame(1));
        let gains = [0.5, 0.25, 0.0, 1.0, 1.0];
        let mut y = vec![Complex32::default(); 5];
        df.apply(
            &mut y,
            &unit_tap(1, Complex32::new(1.0, 0.0)),
            &gains,
            &no_limit(),
        );
        for k in 0..SHAPE.bins {
            let want = frame(0)[k] * gains[k];
            assert!((y[k] - want).norm() < 1e-6, "bin {k}: {} vs {want}", y[k]);
        }
    }

    #[test]
    fn non_finite_taps_leave_the_bin_as_the_gains_made_it() {
        let mut df = DeepFilter::new(Some(SHAPE));
        df.push(&frame(0));
        let mut taps = unit_tap(0, Complex32::new(0.5, 0.0));
        taps[1] = f32::NAN; // bin 0, tap 0, imaginary part
        let mut y = vec![Complex32::new(1.0, 1.0); 5];
        assert_eq!(df.apply(&mut y, &taps, &ONES, &no_limit()), 1);
        assert_eq!(y[0], Complex32::new(1.0, 1.0));
        // a non-finite gain is the gain stage's to count: the bin is left, not counted again
        let gains = [1.0, f32::NAN, 1.0, 1.0, 1.0];
        let mut y = vec![Complex32::new(1.0, 1.0); 5];
        assert_eq!(
            df.apply(
                &mut y,
                &unit_tap(0, Complex32::new(0.5, 0.0)),
                &gains,
                &no_limit()
            ),
            0
        );
        assert_eq!(y[1], Complex32::new(1.0, 1.0));
        assert!(y.iter().all(|c| c.re.is_finite() && c.im.is_finite()));
    }

    #[test]
    fn reset_forgets_the_history_and_no_shape_is_a_no_op() {
        let mut df = DeepFilter::new(Some(SHAPE));
        df.push(&frame(5));
        df.reset();
        df.push(&frame(6));
        let mut y = vec![Complex32::default(); 5];
        df.apply(
            &mut y,
            &unit_tap(1, Complex32::new(1.0, 0.0)),
            &ONES,
            &no_limit(),
        );
        // the frame before the reset is gone: only the (200 dB) floor's trace is left
        assert!(y.iter().all(|c| c.norm() < 1e-6), "{y:?}");
        let mut none = DeepFilter::new(None);
        none.push(&frame(1));
        let mut y = frame(1);
        assert_eq!(none.apply(&mut y, &[], &ONES, &no_limit()), 0);
        assert_eq!(y, frame(1));
        assert_eq!(none.coefs_per_frame(), 0);
    }
}
