//! Validated settings, built from the command line (and, later, the TOML file). Every
//! range is checked here, once, with an error that names the option, the value and what
//! is allowed.

use std::path::{Path, PathBuf};

use crate::cli::{BenchArgs, CleanArgs, ModelArgs, ProviderArg};
use crate::dsp::GainParams;
use crate::error::{Error, Result};
use crate::model::{LoadOptions, Provider};
use crate::offline::CleanOptions;

/// The shipped model, relative to the repository (or install) root.
pub const SHIPPED_MODEL: &str = "models/denoiser.onnx";

fn bad(key: &str, value: impl std::fmt::Display, allowed: &str) -> Error {
    Error::Config {
        key: key.into(),
        value: value.to_string(),
        allowed: allowed.into(),
    }
}

/// Where the shipped model is looked for: the repository this binary was built from, the
/// executable's repository (target/release/..), then an installed share folder.
pub fn shipped_model_candidates() -> Vec<PathBuf> {
    let mut c = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join(SHIPPED_MODEL)];
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        c.push(dir.join("../..").join(SHIPPED_MODEL));
        c.push(dir.join("../share/denoised/denoiser.onnx"));
    }
    c
}

/// The model to use: the one given, or the shipped one (with a clear error if absent).
pub fn resolve_model(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    shipped_model_candidates().into_iter().find(|p| p.is_file()).ok_or_else(|| Error::Model {
        path: SHIPPED_MODEL.into(),
        msg: "the shipped denoiser model is not there (the trained model has not been installed in this \
              checkout); pass --model FILE with a model that follows models/README.md"
            .into(),
    })
}

pub fn provider(p: ProviderArg) -> Provider {
    match p {
        ProviderArg::Auto => Provider::Auto,
        ProviderArg::Cpu => Provider::Cpu,
        ProviderArg::Cuda => Provider::Cuda,
    }
}

pub fn gain_params(attenuation_limit_db: f32, wet: f32) -> Result<GainParams> {
    if !(0.0..=100.0).contains(&attenuation_limit_db) {
        return Err(bad(
            "attenuation-limit-db",
            attenuation_limit_db,
            "allowed: 0 to 100 dB",
        ));
    }
    if !(0.0..=1.0).contains(&wet) {
        return Err(bad(
            "wet-dry",
            wet,
            "allowed: 0.0 (original) to 1.0 (fully denoised)",
        ));
    }
    Ok(GainParams {
        attenuation_limit_db,
        wet,
    })
}

pub fn load_options(m: &ModelArgs, intra_threads: usize) -> LoadOptions {
    LoadOptions {
        provider: provider(m.provider),
        intra_threads,
    }
}

/// Validated `clean` settings.
pub fn clean_options(a: &CleanArgs, progress: bool) -> Result<CleanOptions> {
    let gain = gain_params(a.attenuation_limit_db, a.wet_dry)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = a.jobs.unwrap_or(cores);
    if !(1..=1024).contains(&jobs) {
        return Err(bad("jobs", jobs, "allowed: 1 to 1024"));
    }
    if !(1..=64).contains(&a.threads) {
        return Err(bad("threads", a.threads, "allowed: 1 to 64"));
    }
    if !(1..=1_000_000).contains(&a.frames_per_call) {
        return Err(bad(
            "frames-per-call",
            a.frames_per_call,
            "allowed: 1 to 1000000",
        ));
    }
    Ok(CleanOptions {
        model_path: resolve_model(a.model.model.as_deref())?,
        load: load_options(&a.model, a.threads),
        gain,
        jobs,
        frames_per_call: a.frames_per_call,
        progress,
    })
}

/// Validated `bench` settings.
pub struct BenchOptions {
    pub model_path: PathBuf,
    pub load: LoadOptions,
    pub seconds: f64,
    pub hops: usize,
}

pub fn bench_options(a: &BenchArgs) -> Result<BenchOptions> {
    if !(a.seconds.is_finite() && (1.0..=3600.0).contains(&a.seconds)) {
        return Err(bad("seconds", a.seconds, "allowed: 1 to 3600"));
    }
    if !(10..=1_000_000).contains(&a.hops) {
        return Err(bad("hops", a.hops, "allowed: 10 to 1000000"));
    }
    Ok(BenchOptions {
        model_path: resolve_model(a.model.model.as_deref())?,
        load: load_options(&a.model, 1),
        seconds: a.seconds,
        hops: a.hops,
    })
}

/// Validated `run` settings.
pub struct RunOptions {
    pub model_path: PathBuf,
    pub load: LoadOptions,
    pub gain: GainParams,
    pub input: Option<String>,
    pub output: Option<String>,
    pub virtual_mic: bool,
    pub input_channel: crate::rt::InputChannel,
    /// output ring pre-fill, samples at 48 kHz
    pub prefill_samples: usize,
    pub buffer_frames: Option<u32>,
    pub duration_s: Option<f64>,
    pub stats_every_s: Option<f64>,
}

pub fn run_options(a: &crate::cli::RunArgs, verbose: u8) -> Result<RunOptions> {
    let gain = gain_params(a.attenuation_limit_db, a.wet_dry)?;
    if !(a.latency_ms.is_finite() && (0.0..=1000.0).contains(&a.latency_ms)) {
        return Err(bad("latency-ms", a.latency_ms, "allowed: 0 to 1000 ms"));
    }
    if let Some(b) = a.buffer_frames {
        if !(16..=96_000).contains(&b) {
            return Err(bad("buffer-frames", b, "allowed: 16 to 96000 frames"));
        }
    }
    if let Some(d) = a.duration_s {
        if !(d.is_finite() && d > 0.0) {
            return Err(bad(
                "duration-s",
                d,
                "allowed: a positive number of seconds",
            ));
        }
    }
    Ok(RunOptions {
        model_path: resolve_model(a.model.model.as_deref())?,
        load: load_options(&a.model, 1),
        gain,
        input: a.input.clone(),
        output: a.output.clone(),
        virtual_mic: a.virtual_mic,
        input_channel: a.input_channel.map_or(
            crate::rt::InputChannel::Downmix,
            crate::rt::InputChannel::Index,
        ),
        prefill_samples: (a.latency_ms / 1000.0 * crate::dsp::SAMPLE_RATE_HZ as f32).round()
            as usize,
        buffer_frames: a.buffer_frames,
        duration_s: a.duration_s,
        stats_every_s: (verbose > 0).then_some(5.0),
    })
}
