//! Denoising one 48 kHz channel offline: the same STFT and gain code as the live path,
//! with the model run on many frames per call (the model is causal, so chunked calls with
//! carried state equal one streaming call per hop; a model with lookahead gets its frames
//! through the same `LookaheadDelay` as the stream).
//! The output is aligned with the input: the STFT and lookahead delays are compensated.

use realfft::num_complex::Complex32;

use crate::dsp::{GainParams, HOP_SIZE, N_BINS, PitchFilter, Stft, apply_gain_stage};
use crate::error::Result;
use crate::model::{FrameOutputs, Model};

/// What happened while denoising a channel.
#[derive(Clone, Debug, Default)]
pub struct ChannelStats {
    pub hops: usize,
    pub nonfinite_gains: u64,
}

/// Denoise `x` (48 kHz, [-1, 1]) into a buffer of the same length.
/// `frames_per_call` model frames go into each ONNX Runtime call; `on_hops` reports progress.
pub fn denoise_channel(
    model: &mut Model,
    x: &[f32],
    params: &GainParams,
    frames_per_call: usize,
    on_hops: &mut dyn FnMut(usize),
) -> Result<(Vec<f32>, ChannelStats)> {
    let chunk = frames_per_call.max(1);
    let mut stft = Stft::new();
    let mut lookahead = model.new_lookahead();
    let latency = stft.latency_samples() + lookahead.latency_samples();
    let n_hops = (x.len() + latency).div_ceil(HOP_SIZE);
    let mut padded = x.to_vec();
    padded.resize(n_hops * HOP_SIZE, 0.0);
    let mut out = vec![0.0f32; n_hops * HOP_SIZE];

    let mut state = model.new_state();
    let mut pitch = PitchFilter::new();
    let mut deep = model.new_deep_filter();
    let df_per_frame = deep.coefs_per_frame();
    let mut df_coefs = vec![0.0f32; chunk * df_per_frame];
    let mut specs = vec![Complex32::default(); chunk * N_BINS];
    let mut flat = vec![0.0f32; chunk * N_BINS * 2];
    let mut gains = vec![0.0f32; chunk * N_BINS];
    let mut prob = vec![0.0f32; chunk];
    let mut unc = vec![0.0f32; chunk];
    let mut hop_in = vec![0.0f32; HOP_SIZE];
    let mut stats = ChannelStats {
        hops: n_hops,
        ..Default::default()
    };

    let mut hop = 0;
    while hop < n_hops {
        let t = chunk.min(n_hops - hop);
        for f in 0..t {
            let h = hop + f;
            let spec = &mut specs[f * N_BINS..(f + 1) * N_BINS];
            stft.analyze(&padded[h * HOP_SIZE..(h + 1) * HOP_SIZE], spec);
            for (k, c) in spec.iter().enumerate() {
                flat[(f * N_BINS + k) * 2] = c.re;
                flat[(f * N_BINS + k) * 2 + 1] = c.im;
            }
        }
        model.run(
            &mut state,
            &flat[..t * N_BINS * 2],
            t,
            FrameOutputs {
                gains: &mut gains[..t * N_BINS],
                speech_prob: &mut prob[..t],
                uncertainty: &mut unc[..t],
                df_coefs: &mut df_coefs[..t * df_per_frame],
            },
        )?;
        for f in 0..t {
            let h = hop + f;
            let spec = &mut specs[f * N_BINS..(f + 1) * N_BINS];
            // the gains belong to the frame `lookahead` hops back, and the filter's history
            // follows the hop being resynthesised, not the analysis above
            hop_in.copy_from_slice(&padded[h * HOP_SIZE..(h + 1) * HOP_SIZE]);
            lookahead.exchange(spec, &mut hop_in);
            pitch.push_hop(&hop_in);
            let g = &gains[f * N_BINS..(f + 1) * N_BINS];
            let taps = &df_coefs[f * df_per_frame..(f + 1) * df_per_frame];
            stats.nonfinite_gains +=
                apply_gain_stage(spec, g, taps, params, &mut pitch, &mut deep) as u64;
            stft.synthesize(spec, &mut out[h * HOP_SIZE..(h + 1) * HOP_SIZE]);
        }
        hop += t;
        on_hops(t);
    }
    out.drain(..latency);
    out.truncate(x.len());
    Ok((out, stats))
}
