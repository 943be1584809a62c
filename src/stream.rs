//! One stream's hop-by-hop denoiser: STFT analysis -> model (T=1, carried state) ->
//! lookahead delay (for a model with lookahead) -> gains (and deep filter, for a model
//! with one) -> synthesis. The live worker runs one per channel; the bench times it.
//!
//! Everything is allocated in `new()`. `process_hop` allocates nothing itself; only the
//! model call inside it (ONNX Runtime) may, which is why it can be exempted separately.

use realfft::num_complex::Complex32;

use crate::dsp::{
    DeepFilter, GainParams, HOP_SIZE, LookaheadDelay, N_BINS, PitchFilter, Stft, apply_gain_stage,
};
use crate::error::Result;
use crate::model::{FrameOutputs, Model, ModelState};

/// Side information about one hop.
#[derive(Clone, Copy, Debug, Default)]
pub struct HopInfo {
    pub speech_prob: f32,
    pub uncertainty: f32,
    pub nonfinite_gains: u32,
}

pub struct StreamDenoiser {
    stft: Stft,
    /// always fed, so that switching it on mid-stream finds a current history
    pitch: PitchFilter,
    deep: DeepFilter,
    lookahead: LookaheadDelay,
    state: ModelState,
    /// after `analyze`: the frame the next gains belong to (`lookahead` frames back)
    spec: Vec<Complex32>,
    /// that frame's input hop, for the pitch filter
    hop: Vec<f32>,
    flat: Vec<f32>,
    gains: Vec<f32>,
    df_coefs: Vec<f32>,
    prob: [f32; 1],
    unc: [f32; 1],
    pub params: GainParams,
}

impl StreamDenoiser {
    pub fn new(model: &Model, params: GainParams) -> Self {
        let stft = Stft::new();
        let deep = model.new_deep_filter();
        Self {
            df_coefs: vec![0.0; deep.coefs_per_frame()],
            deep,
            spec: stft.make_spectrum(),
            stft,
            pitch: PitchFilter::new(),
            lookahead: model.new_lookahead(),
            hop: vec![0.0; HOP_SIZE],
            state: model.new_state(),
            flat: vec![0.0; N_BINS * 2],
            gains: vec![0.0; N_BINS],
            prob: [0.0],
            unc: [0.0],
            params,
        }
    }

    /// Input-to-output delay of this processor, in samples at 48 kHz.
    pub fn latency_samples(&self) -> usize {
        self.stft.latency_samples()
            + self.lookahead.latency_samples()
            + self.pitch.latency_samples()
            + self.deep.latency_samples()
    }

    pub fn reset(&mut self) {
        self.stft.reset();
        self.pitch.reset();
        self.deep.reset();
        self.lookahead.reset();
        self.state.reset();
    }

    /// Analysis and packing into the model's input layout (allocation-free).
    pub fn analyze(&mut self, input: &[f32]) {
        debug_assert_eq!(input.len(), HOP_SIZE);
        self.stft.analyze(input, &mut self.spec);
        for (k, c) in self.spec.iter().enumerate() {
            self.flat[2 * k] = c.re;
            self.flat[2 * k + 1] = c.im;
        }
        // the model hears this frame; the gains it gives belong to the delayed one
        self.hop.copy_from_slice(input);
        self.lookahead.exchange(&mut self.spec, &mut self.hop);
        self.pitch.push_hop(&self.hop);
    }

    /// The model call for the analysed hop (ONNX Runtime may allocate here).
    pub fn infer(&mut self, model: &mut Model) -> Result<()> {
        model.run(
            &mut self.state,
            &self.flat,
            1,
            FrameOutputs {
                gains: &mut self.gains,
                speech_prob: &mut self.prob,
                uncertainty: &mut self.unc,
                df_coefs: &mut self.df_coefs,
            },
        )
    }

    /// Gains and synthesis of the analysed hop (allocation-free).
    pub fn synthesize(&mut self, output: &mut [f32]) -> HopInfo {
        debug_assert_eq!(output.len(), HOP_SIZE);
        let bad = apply_gain_stage(
            &mut self.spec,
            &self.gains,
            &self.df_coefs,
            &self.params,
            &mut self.pitch,
            &mut self.deep,
        );
        self.stft.synthesize(&mut self.spec, output);
        HopInfo {
            speech_prob: self.prob[0],
            uncertainty: self.unc[0],
            nonfinite_gains: bad,
        }
    }

    /// All three steps for one hop of 480 samples.
    pub fn process_hop(
        &mut self,
        model: &mut Model,
        input: &[f32],
        output: &mut [f32],
    ) -> Result<HopInfo> {
        self.analyze(input);
        self.infer(model)?;
        Ok(self.synthesize(output))
    }
}
