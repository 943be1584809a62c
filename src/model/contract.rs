//! The model contract (version 1), checked when a model is loaded. See models/README.md.
//!
//! metadata_props: `denoised.contract` = "1", `sample_rate_hz` = 48000, `fft_size` = 960,
//! `hop_size` = 480, `window` = "sqrt-hann", `bins` = 481, `lookahead_frames` = 0 to
//! [`MAX_LOOKAHEAD_FRAMES`] (the gains returned with frame t belong to frame t - L, see
//! `dsp::lookahead`), `output` = "gains" (optional: `name`, anything else).
//! Inputs: `spec` f32 [1, T, 481, 2] (re, im of the unnormalised rfft of the sqrt-Hann
//! windowed frame, audio in [-1, 1]) and `state_in_<k>` f32 tensors of fixed shape.
//! Outputs: `gains` f32 [1, T, 481] in [0, 1], optional `speech_prob` [1, T],
//! `uncertainty` [1, T] and `df_coefs` [1, T, bins, order, 2] (deep-filter taps for the
//! first `bins` bins over this frame and the `order - 1` before it, see `dsp::deep_filter`),
//! and `state_out_<k>` for every `state_in_<k>`, same shape.
//! T is dynamic; states start at zero and carry from one call to the next.

use std::collections::BTreeMap;
use std::path::Path;

use ort::session::Session;
use ort::value::ValueType;

use crate::dsp::{DeepFilterShape, FFT_SIZE, HOP_SIZE, N_BINS, SAMPLE_RATE_HZ};
use crate::error::{Error, Result};

pub const CONTRACT_VERSION: &str = "1";

/// Most deep-filter taps per bin a model may ask for (DeepFilterNet uses 5): the history
/// the stream keeps grows with it.
pub const MAX_DF_ORDER: usize = 32;

/// Most lookahead a model may declare: 4 frames, 40 ms on top of the STFT's 20 ms
/// (DeepFilterNet 3 uses 2). More would no longer suit a call.
pub const MAX_LOOKAHEAD_FRAMES: usize = 4;

/// One recurrent state tensor: fed back from `out_name` to `in_name` every call.
#[derive(Clone, Debug, PartialEq)]
pub struct StateSpec {
    pub in_name: String,
    pub out_name: String,
    pub shape: Vec<usize>,
}

impl StateSpec {
    /// Number of f32 values in the tensor (the product of its shape).
    pub fn element_count(&self) -> usize {
        self.shape.iter().product()
    }
}

/// What a validated model file declares about itself.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub name: String,
    pub sample_rate_hz: u32,
    pub fft_size: usize,
    pub hop_size: usize,
    pub bins: usize,
    pub lookahead_frames: usize,
    pub states: Vec<StateSpec>,
    pub has_speech_prob: bool,
    pub has_uncertainty: bool,
    /// the shape of `df_coefs`, when the model has deep-filter taps
    pub deep_filter: Option<DeepFilterShape>,
    /// every metadata_props entry, for `model info`
    pub metadata: BTreeMap<String, String>,
    pub inputs: Vec<(String, String)>,
    pub outputs: Vec<(String, String)>,
}

fn shape_of(t: &ValueType) -> Option<Vec<i64>> {
    t.tensor_shape().map(|s| s.iter().copied().collect())
}

fn fmt_shape(s: &[i64]) -> String {
    let d: Vec<String> = s
        .iter()
        .map(|&d| if d < 0 { "T".into() } else { d.to_string() })
        .collect();
    format!("[{}]", d.join(", "))
}

fn describe(t: &ValueType) -> String {
    match (t.tensor_type(), shape_of(t)) {
        (Some(ty), Some(s)) => format!("{ty:?} {}", fmt_shape(&s)),
        _ => format!("{t:?}"),
    }
}

fn is_f32(t: &ValueType) -> bool {
    matches!(
        t.tensor_type(),
        Some(ort::value::TensorElementType::Float32)
    )
}

/// Check `session` (loaded from `path`) against the contract.
pub fn validate(path: &Path, session: &Session) -> Result<ModelSpec> {
    let err = |msg: String| Error::model(path, msg);
    let meta = session
        .metadata()
        .map_err(|e| err(format!("cannot read metadata: {e}")))?;
    let mut metadata = BTreeMap::new();
    for k in meta
        .custom_keys()
        .map_err(|e| err(format!("cannot read metadata: {e}")))?
    {
        if let Some(v) = meta.custom(&k) {
            metadata.insert(k, v);
        }
    }
    let get = |key: &str| -> Result<&String> {
        metadata.get(key).ok_or_else(|| {
            err(format!(
                "metadata_props has no `{key}`; is this a denoised model? (expected contract {CONTRACT_VERSION}, see models/README.md)"
            ))
        })
    };
    let version = get("denoised.contract")?;
    if version != CONTRACT_VERSION {
        return Err(err(format!(
            "contract version {version}, this build reads version {CONTRACT_VERSION}"
        )));
    }
    let num = |key: &str, expected: usize, hint: &str| -> Result<usize> {
        let v = get(key)?;
        let n: usize = v
            .parse()
            .map_err(|_| err(format!("metadata `{key}` = {v:?} is not a number")))?;
        if n != expected {
            return Err(err(format!(
                "metadata `{key}`: expected {expected}, found {n}{hint}"
            )));
        }
        Ok(n)
    };
    let sample_rate_hz = num(
        "sample_rate_hz",
        SAMPLE_RATE_HZ as usize,
        "; was it exported for another rate?",
    )? as u32;
    let fft_size = num("fft_size", FFT_SIZE, "")?;
    let hop_size = num("hop_size", HOP_SIZE, "")?;
    let bins = num("bins", N_BINS, "")?;
    let lookahead = get("lookahead_frames")?;
    let lookahead_frames = match lookahead.parse::<usize>() {
        Ok(n) if n <= MAX_LOOKAHEAD_FRAMES => n,
        Ok(n) => {
            return Err(err(format!(
                "metadata `lookahead_frames` = {n}: at most {MAX_LOOKAHEAD_FRAMES} frames ({} ms) are supported",
                MAX_LOOKAHEAD_FRAMES * 10
            )));
        }
        Err(_) => {
            return Err(err(format!(
                "metadata `lookahead_frames` = {lookahead:?} is not a number"
            )));
        }
    };
    let window = get("window")?;
    if window != "sqrt-hann" {
        return Err(err(format!(
            "metadata `window`: expected \"sqrt-hann\", found {window:?}"
        )));
    }
    let output = get("output")?;
    if output != "gains" {
        return Err(err(format!(
            "metadata `output`: expected \"gains\", found {output:?}"
        )));
    }

    let inputs: Vec<(String, String)> = session
        .inputs()
        .iter()
        .map(|o| (o.name().to_string(), describe(o.dtype())))
        .collect();
    let outputs: Vec<(String, String)> = session
        .outputs()
        .iter()
        .map(|o| (o.name().to_string(), describe(o.dtype())))
        .collect();
    let find_in = |n: &str| session.inputs().iter().find(|o| o.name() == n);
    let find_out = |n: &str| session.outputs().iter().find(|o| o.name() == n);

    let spec = find_in("spec")
        .ok_or_else(|| err("no input named `spec` (expected f32 [1, T, 481, 2])".into()))?;
    let expect_shape = |name: &str, t: &ValueType, want: &[i64]| -> Result<()> {
        let s = shape_of(t).unwrap_or_default();
        let ok = is_f32(t)
            && s.len() == want.len()
            && s.iter().zip(want).all(|(&got, &w)| {
                if w < 0 {
                    !(0..1).contains(&got)
                } else {
                    got == w
                }
            });
        if ok {
            Ok(())
        } else {
            Err(err(format!(
                "`{name}`: expected Float32 {}, found {}",
                fmt_shape(want),
                describe(t)
            )))
        }
    };
    expect_shape("spec", spec.dtype(), &[1, -1, N_BINS as i64, 2])?;
    let gains = find_out("gains")
        .ok_or_else(|| err("no output named `gains` (expected f32 [1, T, 481])".into()))?;
    expect_shape("gains", gains.dtype(), &[1, -1, N_BINS as i64])?;
    let mut has_speech_prob = false;
    if let Some(p) = find_out("speech_prob") {
        expect_shape("speech_prob", p.dtype(), &[1, -1])?;
        has_speech_prob = true;
    }
    let mut has_uncertainty = false;
    if let Some(p) = find_out("uncertainty") {
        expect_shape("uncertainty", p.dtype(), &[1, -1])?;
        has_uncertainty = true;
    }
    let mut deep_filter = None;
    if let Some(p) = find_out("df_coefs") {
        let s = shape_of(p.dtype()).unwrap_or_default();
        let fits = is_f32(p.dtype())
            && s.len() == 5
            && s[0] == 1
            && !(0..1).contains(&s[1])
            && (1..=N_BINS as i64).contains(&s[2])
            && (1..=MAX_DF_ORDER as i64).contains(&s[3])
            && s[4] == 2;
        if !fits {
            return Err(err(format!(
                "`df_coefs`: expected Float32 [1, T, bins <= {N_BINS}, order <= {MAX_DF_ORDER}, 2], found {}",
                describe(p.dtype())
            )));
        }
        deep_filter = Some(DeepFilterShape {
            bins: s[2] as usize,
            order: s[3] as usize,
        });
    }

    let mut states = Vec::new();
    for i in session.inputs() {
        let name = i.name();
        if name == "spec" {
            continue;
        }
        let Some(key) = name.strip_prefix("state_in_") else {
            return Err(err(format!(
                "unexpected input `{name}`: inputs are `spec` and `state_in_<name>`"
            )));
        };
        let shape = shape_of(i.dtype()).unwrap_or_default();
        if !is_f32(i.dtype()) || shape.iter().any(|&d| d < 1) {
            return Err(err(format!(
                "state input `{name}`: expected Float32 of fixed shape, found {}",
                describe(i.dtype())
            )));
        }
        let out_name = format!("state_out_{key}");
        let o = find_out(&out_name).ok_or_else(|| {
            err(format!(
                "state input `{name}` has no matching output `{out_name}`"
            ))
        })?;
        let out_shape = shape_of(o.dtype()).unwrap_or_default();
        if out_shape != shape {
            return Err(err(format!(
                "`{out_name}`: expected {} like `{name}`, found {}",
                fmt_shape(&shape),
                describe(o.dtype())
            )));
        }
        states.push(StateSpec {
            in_name: name.to_string(),
            out_name,
            shape: shape.iter().map(|&d| d as usize).collect(),
        });
    }
    for o in session.outputs() {
        let n = o.name();
        let known = matches!(n, "gains" | "speech_prob" | "uncertainty" | "df_coefs")
            || (n.starts_with("state_out_") && states.iter().any(|s| s.out_name == n));
        if !known {
            return Err(err(format!(
                "unexpected output `{n}` (no matching `state_in_` input?)"
            )));
        }
    }
    let name = metadata.get("name").cloned().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    Ok(ModelSpec {
        name,
        sample_rate_hz,
        fft_size,
        hop_size,
        bins,
        lookahead_frames,
        states,
        has_speech_prob,
        has_uncertainty,
        deep_filter,
        metadata,
        inputs,
        outputs,
    })
}
