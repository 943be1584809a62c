//! Turning the model's per-bin gains into the spectrum we resynthesise.
//!
//! The attenuation limit is a floor on the gain (`-limit_db` dB): like DeepFilterNet's
//! `--atten-lim`, it trades residual noise for fewer artefacts, and it keeps a call from
//! sounding "dead" between words. The wet/dry mix blends the denoised spectrum with the
//! input spectrum (which is exact because the STFT is linear). A gain that is not a finite
//! number, which a broken model could produce, passes the bin through unchanged: nothing
//! non-finite ever reaches the output.

use realfft::num_complex::Complex32;

use super::deep_filter::DeepFilter;
use super::pitch::PitchFilter;

/// Default attenuation limit: at most 30 dB of noise reduction. Enough to make fans,
/// traffic and keyboards inaudible under speech in a call, while a floor keeps the
/// background natural and hides the model's mistakes on noise-only stretches.
pub const DEFAULT_ATTENUATION_LIMIT_DB: f32 = 30.0;

/// The pitch filter is on by default, as in RNNoise: through `denoised clean` with the
/// shipped model it raised PESQ-WB by 0.029 +- 0.007 on the held-out set (see `dsp::pitch`
/// and the model card); `--pitch-filter=false` turns it off.
pub const DEFAULT_PITCH_FILTER: bool = true;

/// Validated gain settings (see `config.rs` for the ranges).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GainParams {
    /// Largest attenuation applied to any bin, in dB (>= 0; 0 = bypass).
    pub attenuation_limit_db: f32,
    /// 1.0 = fully denoised, 0.0 = the input unchanged.
    pub wet: f32,
    /// Run RNNoise's pitch filter (`dsp::pitch`) before the gains.
    pub pitch_filter: bool,
}

impl Default for GainParams {
    fn default() -> Self {
        Self {
            attenuation_limit_db: DEFAULT_ATTENUATION_LIMIT_DB,
            wet: 1.0,
            pitch_filter: DEFAULT_PITCH_FILTER,
        }
    }
}

impl GainParams {
    /// The smallest linear gain the limit allows.
    pub fn min_gain(&self) -> f32 {
        10f32.powf(-self.attenuation_limit_db / 20.0)
    }
}

/// Multiply `spec` in place by the model's `gains`, limited and mixed per `params`.
/// Returns how many gains were not finite (replaced by 1).
pub fn apply_gains(spec: &mut [Complex32], gains: &[f32], params: &GainParams) -> u32 {
    debug_assert_eq!(spec.len(), gains.len());
    let floor = params.min_gain();
    let mut bad = 0;
    for (s, &g) in spec.iter_mut().zip(gains) {
        let g = if g.is_finite() {
            g.clamp(floor, 1.0)
        } else {
            bad += 1;
            1.0
        };
        let g = params.wet * g + (1.0 - params.wet);
        *s *= g;
    }
    bad
}

/// The whole gain stage of one hop, as every path runs it: the model's `gains` on `spec`,
/// after the pitch filter when `params.pitch_filter` (the hop's input must already be in
/// `pitch` through `PitchFilter::push_hop`), plus, through the same gains, the deep filter's
/// taps `df_coefs` (empty for a model without them) over the noisy spectrum's past. Returns
/// how many gains and bins of taps were not finite.
pub fn apply_gain_stage(
    spec: &mut [Complex32],
    gains: &[f32],
    df_coefs: &[f32],
    params: &GainParams,
    pitch: &mut PitchFilter,
    deep: &mut DeepFilter,
) -> u32 {
    deep.push(spec);
    let bad = if params.pitch_filter {
        let filtered = pitch.filter(spec, gains, params.min_gain());
        apply_gains_filtered(spec, filtered, gains, params)
    } else {
        apply_gains(spec, gains, params)
    };
    bad + deep.apply(spec, df_coefs, gains, params)
}

/// As `apply_gains`, with the wet path taken from `filtered` (the pitch-filtered spectrum):
/// `spec = wet * g * filtered + (1 - wet) * spec`, so that wet = 0 still returns the input
/// exactly. Returns how many gains were not finite (those bins get `spec` unchanged).
pub fn apply_gains_filtered(
    spec: &mut [Complex32],
    filtered: &[Complex32],
    gains: &[f32],
    params: &GainParams,
) -> u32 {
    debug_assert_eq!(spec.len(), gains.len());
    debug_assert_eq!(spec.len(), filtered.len());
    let floor = params.min_gain();
    let mut bad = 0;
    for ((s, &f), &g) in spec.iter_mut().zip(filtered).zip(gains) {
        if g.is_finite() {
            *s = f * (params.wet * g.clamp(floor, 1.0)) + *s * (1.0 - params.wet);
        } else {
            bad += 1;
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filtered_dry_mix_is_the_input_and_wet_mix_uses_the_filtered_spectrum() {
        let input = vec![Complex32::new(0.3, -0.2); 4];
        let filtered = vec![Complex32::new(0.1, 0.4); 4];
        let gains = [1.0, 0.5, f32::NAN, 0.0];
        let mut dry = input.clone();
        let p = GainParams {
            wet: 0.0,
            ..GainParams::default()
        };
        apply_gains_filtered(&mut dry, &filtered, &gains, &p);
        assert_eq!(dry, input);
        let mut wet = input.clone();
        let bad = apply_gains_filtered(&mut wet, &filtered, &gains, &GainParams::default());
        assert_eq!(bad, 1);
        assert_eq!(wet[0], filtered[0]);
        assert_eq!(wet[1], filtered[1] * 0.5);
        assert_eq!(
            wet[2], input[2],
            "a non-finite gain passes the input through"
        );
        let floor = GainParams::default().min_gain();
        assert!((wet[3] - filtered[3] * floor).norm() < 1e-7);
    }

    #[test]
    fn attenuation_limit_floors_gain() {
        let p = GainParams {
            attenuation_limit_db: 20.0,
            wet: 1.0,
            pitch_filter: false,
        };
        let mut spec = vec![Complex32::new(1.0, 1.0); 3];
        apply_gains(&mut spec, &[0.0, 0.5, 1.0], &p);
        assert!((spec[0].re - 0.1).abs() < 1e-6);
        assert!((spec[1].re - 0.5).abs() < 1e-6);
        assert!((spec[2].re - 1.0).abs() < 1e-6);
    }

    #[test]
    fn non_finite_gains_pass_through_and_are_counted() {
        let p = GainParams::default();
        let mut spec = vec![Complex32::new(0.5, -0.25); 3];
        let bad = apply_gains(&mut spec, &[f32::NAN, f32::INFINITY, 0.5], &p);
        assert_eq!(bad, 2);
        assert!(spec.iter().all(|c| c.re.is_finite() && c.im.is_finite()));
        assert_eq!(spec[0], Complex32::new(0.5, -0.25));
    }

    #[test]
    fn dry_mix_is_identity() {
        let p = GainParams {
            attenuation_limit_db: 100.0,
            wet: 0.0,
            pitch_filter: false,
        };
        let mut spec = vec![Complex32::new(0.3, 0.7); 2];
        apply_gains(&mut spec, &[0.0, 0.2], &p);
        assert_eq!(spec[0], Complex32::new(0.3, 0.7));
    }
}
