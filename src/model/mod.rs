//! The ONNX model: loading, validation against the contract, and inference.
//!
//! [`Model`] is the loaded network and what it declares ([`ModelSpec`]); it holds no
//! stream's history. [`ModelState`] is one stream's recurrent state (zeros at start),
//! owned by the stream, so offline channels, live streams and tests each carry their own.
//! `ort`'s `Session::run` needs `&mut`, so every thread that runs a model owns a `Model`
//! (session creation takes ~20 ms; the spec is shared through an `Arc`).

pub mod contract;
pub mod onnx_file;
pub mod runtime;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ort::ep;
use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;

pub use contract::{ModelSpec, StateSpec};
pub use runtime::{Provider, ensure_runtime};

use crate::dsp::{DeepFilter, LookaheadDelay, N_BINS};
use crate::error::{Error, Result};

/// How to build a session.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub provider: Provider,
    /// ONNX Runtime intra-op threads (1 for streaming and for one file of a batch).
    pub intra_threads: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            provider: Provider::Cpu,
            intra_threads: 1,
        }
    }
}

/// A loaded, validated model and the provider it really runs on.
pub struct Model {
    spec: Arc<ModelSpec>,
    path: PathBuf,
    session: Session,
    provider_used: &'static str,
}

/// One stream's recurrent state, in the order of `ModelSpec::states`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelState {
    tensors: Vec<Vec<f32>>,
}

impl ModelState {
    pub fn reset(&mut self) {
        for t in &mut self.tensors {
            t.fill(0.0);
        }
    }
}

/// Per-frame side outputs of one model call.
pub struct FrameOutputs<'a> {
    /// [T * 481] gains, frame-major
    pub gains: &'a mut [f32],
    /// [T] speech probability (0 when the model has none)
    pub speech_prob: &'a mut [f32],
    /// [T] posterior uncertainty (0 when the model has none)
    pub uncertainty: &'a mut [f32],
    /// [T * bins * order * 2] deep-filter taps, frame-major (empty when the model has none)
    pub df_coefs: &'a mut [f32],
}

fn build_session(
    env: &ort::environment::Environment,
    path: &Path,
    opts: &LoadOptions,
    cuda: bool,
) -> std::result::Result<Session, String> {
    let mut b = Session::builder(env).map_err(|e| e.to_string())?;
    b = b
        .with_intra_threads(opts.intra_threads.max(1))
        .map_err(|e| e.to_string())?;
    b = b.with_inter_threads(1).map_err(|e| e.to_string())?;
    if cuda {
        runtime::preload_cuda_libraries();
        b = b
            .with_execution_providers([ep::CUDA::default().build().error_on_failure()])
            .map_err(|e| e.to_string())?;
    }
    b.commit_from_file(path).map_err(|e| e.to_string())
}

impl Model {
    /// Load `path`, choosing the execution provider per `opts`, and validate the contract.
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Self> {
        let (_, env) = runtime::environment()?;
        if !path.is_file() {
            return Err(Error::model(path, "no such file"));
        }
        let load_cpu = || {
            build_session(env, path, opts, false)
                .map_err(|e| Error::model(path, format!("not a loadable ONNX model: {e}")))
        };
        let (session, provider_used) = match opts.provider {
            Provider::Cpu => (load_cpu()?, "CPU"),
            Provider::Cuda => {
                let s =
                    build_session(env, path, opts, true).map_err(|msg| Error::CudaUnavailable {
                        msg: if msg.contains("libcuda.so") {
                            format!(
                                "no NVIDIA driver on this machine (libcuda.so.1 is missing): {msg}"
                            )
                        } else {
                            msg
                        },
                    })?;
                (s, "CUDA")
            }
            Provider::Auto => match build_session(env, path, opts, true) {
                Ok(s) => (s, "CUDA"),
                // no CUDA provider, libraries or driver here: the CPU is the answer
                Err(_) => (load_cpu()?, "CPU"),
            },
        };
        let spec = contract::validate(path, &session)?;
        Ok(Self {
            spec: Arc::new(spec),
            path: path.to_path_buf(),
            session,
            provider_used,
        })
    }

    pub fn spec(&self) -> &Arc<ModelSpec> {
        &self.spec
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// "CPU" or "CUDA": the execution provider this session really uses.
    pub fn provider(&self) -> &'static str {
        self.provider_used
    }

    /// A new stream's deep filter for this model (one that does nothing without taps).
    pub fn new_deep_filter(&self) -> DeepFilter {
        DeepFilter::new(self.spec.deep_filter)
    }

    /// A new stream's lookahead delay for this model (a pass-through without lookahead).
    pub fn new_lookahead(&self) -> LookaheadDelay {
        LookaheadDelay::new(self.spec.lookahead_frames)
    }

    /// Zeroed recurrent state for a new stream.
    pub fn new_state(&self) -> ModelState {
        ModelState {
            tensors: self
                .spec
                .states
                .iter()
                .map(|s| vec![0.0; s.element_count()])
                .collect(),
        }
    }

    /// Run `frames` STFT frames (`spec` = [frames * 481 * 2], interleaved re/im) through the
    /// model, carrying `state`. Allocates inside ONNX Runtime: the live worker calls it
    /// outside the allocation-checked region.
    pub fn run(
        &mut self,
        state: &mut ModelState,
        spec: &[f32],
        frames: usize,
        out: FrameOutputs<'_>,
    ) -> Result<()> {
        debug_assert_eq!(spec.len(), frames * N_BINS * 2);
        debug_assert_eq!(out.gains.len(), frames * N_BINS);
        let path = self.path.clone();
        let ierr = |e: ort::Error| Error::Inference {
            path: path.clone(),
            msg: e.to_string(),
        };
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(1 + state.tensors.len());
        inputs.push((
            Cow::Borrowed("spec"),
            TensorRef::from_array_view(([1usize, frames, N_BINS, 2], spec))
                .map_err(ierr)?
                .into(),
        ));
        for (s, t) in self.spec.states.iter().zip(&state.tensors) {
            let v = TensorRef::from_array_view((s.shape.clone(), t.as_slice())).map_err(ierr)?;
            inputs.push((Cow::Borrowed(s.in_name.as_str()), v.into()));
        }
        let outputs = self.session.run(inputs).map_err(ierr)?;
        let (_, g) = outputs["gains"].try_extract_tensor::<f32>().map_err(ierr)?;
        if g.len() != out.gains.len() {
            return Err(Error::Inference {
                path,
                msg: format!(
                    "`gains` has {} values, expected {}",
                    g.len(),
                    out.gains.len()
                ),
            });
        }
        out.gains.copy_from_slice(g);
        for (name, dst, present) in [
            (
                "speech_prob",
                &mut *out.speech_prob,
                self.spec.has_speech_prob,
            ),
            (
                "uncertainty",
                &mut *out.uncertainty,
                self.spec.has_uncertainty,
            ),
        ] {
            if present {
                let (_, v) = outputs[name].try_extract_tensor::<f32>().map_err(ierr)?;
                if v.len() == dst.len() {
                    dst.copy_from_slice(v);
                }
            } else {
                dst.fill(0.0);
            }
        }
        if self.spec.deep_filter.is_some() {
            let (_, v) = outputs["df_coefs"]
                .try_extract_tensor::<f32>()
                .map_err(ierr)?;
            if v.len() != out.df_coefs.len() {
                return Err(Error::Inference {
                    path,
                    msg: format!(
                        "`df_coefs` has {} values, expected {}",
                        v.len(),
                        out.df_coefs.len()
                    ),
                });
            }
            out.df_coefs.copy_from_slice(v);
        }
        for (s, t) in self.spec.states.iter().zip(state.tensors.iter_mut()) {
            let (_, v) = outputs[s.out_name.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(ierr)?;
            if v.len() != t.len() {
                return Err(Error::Inference {
                    path,
                    msg: format!("`{}` changed size", s.out_name),
                });
            }
            t.copy_from_slice(v);
        }
        Ok(())
    }
}
