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

pub fn gain_params(attenuation_limit_db: f32, wet: f32, pitch_filter: bool) -> Result<GainParams> {
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
        pitch_filter,
    })
}

pub fn load_options(m: &ModelArgs, intra_threads: usize) -> LoadOptions {
    LoadOptions {
        provider: provider(m.provider.unwrap_or(ProviderArg::Auto)),
        intra_threads,
    }
}

/// Validated `clean` settings.
pub fn clean_options(a: &CleanArgs, progress: bool) -> Result<CleanOptions> {
    let gain = gain_params(
        a.attenuation_limit_db,
        a.wet_dry,
        a.pitch_filter
            .unwrap_or(crate::dsp::gain::DEFAULT_PITCH_FILTER),
    )?;
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
    pub pitch_filter: bool,
    /// `--against`: a second model timed in turns with the first.
    pub against: Option<PathBuf>,
    pub turn_hops: usize,
}

pub fn bench_options(a: &BenchArgs) -> Result<BenchOptions> {
    if !(a.seconds.is_finite() && (1.0..=3600.0).contains(&a.seconds)) {
        return Err(bad("seconds", a.seconds, "allowed: 1 to 3600"));
    }
    if !(10..=1_000_000).contains(&a.hops) {
        return Err(bad("hops", a.hops, "allowed: 10 to 1000000"));
    }
    if !(1..=1000).contains(&a.turn_hops) {
        return Err(bad("turn-hops", a.turn_hops, "allowed: 1 to 1000"));
    }
    Ok(BenchOptions {
        model_path: resolve_model(a.model.model.as_deref())?,
        load: load_options(&a.model, 1),
        seconds: a.seconds,
        hops: a.hops,
        pitch_filter: a
            .pitch_filter
            .unwrap_or(crate::dsp::gain::DEFAULT_PITCH_FILTER),
        against: a.against.clone(),
        turn_hops: a.turn_hops,
    })
}

/// The configuration file (configs/denoised.toml documents every key). Every field is
/// optional; unknown keys are errors.
#[derive(Debug, Default, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub audio: AudioSection,
    pub denoise: DenoiseSection,
    pub model: ModelSection,
    pub log: LogSection,
}

#[derive(Debug, Default, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioSection {
    pub input: Option<String>,
    pub output: Option<String>,
    pub input_channel: Option<i64>,
    pub virtual_mic: Option<bool>,
    pub latency_ms: Option<f64>,
    pub buffer_frames: Option<i64>,
}

#[derive(Debug, Default, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DenoiseSection {
    pub attenuation_limit_db: Option<f64>,
    pub wet_dry: Option<f64>,
    pub pitch_filter: Option<bool>,
}

#[derive(Debug, Default, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    pub path: Option<String>,
    pub provider: Option<String>,
}

#[derive(Debug, Default, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    pub level: Option<String>,
}

/// How much the daemon logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

/// `--config`, else $XDG_CONFIG_HOME/denoised/config.toml (or ~/.config/...) if it exists.
pub fn config_path(given: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = given {
        return Some(p.to_path_buf());
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    let p = base.join("denoised/config.toml");
    p.is_file().then_some(p)
}

/// Read and parse a configuration file. Errors are `Error::Config` (exit status 78).
pub fn read_file_config(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        bad(
            "config",
            path.display(),
            &format!("cannot read the file: {e}"),
        )
    })?;
    toml::from_str(&text).map_err(|e| {
        let msg = e.message().to_string();
        // toml names the offending key in its message ("unknown field `x`, expected ...")
        let key = msg.split('`').nth(1).unwrap_or("(file)").to_string();
        Error::Config {
            key,
            value: path.display().to_string(),
            allowed: format!("{msg} (see configs/denoised.toml for every key)"),
        }
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
    /// `--tap`: where to record the worker's input and output (see `tap`)
    pub tap_dir: Option<PathBuf>,
    pub log_level: LogLevel,
    /// the file the settings came from, for reloads
    pub config_file: Option<PathBuf>,
}

pub fn run_options(a: &crate::cli::RunArgs, verbose: u8) -> Result<RunOptions> {
    let config_file = config_path(a.config.as_deref());
    let f = match &config_file {
        Some(p) => read_file_config(p)?,
        None => FileConfig::default(),
    };
    merge_run_options(a, &f, verbose, config_file)
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|v| !v.is_empty())
}

/// Command line over file over defaults, each value checked once.
pub fn merge_run_options(
    a: &crate::cli::RunArgs,
    f: &FileConfig,
    verbose: u8,
    config_file: Option<PathBuf>,
) -> Result<RunOptions> {
    let att = a
        .attenuation_limit_db
        .map(f64::from)
        .or(f.denoise.attenuation_limit_db)
        .unwrap_or(crate::dsp::gain::DEFAULT_ATTENUATION_LIMIT_DB as f64);
    let wet = a
        .wet_dry
        .map(f64::from)
        .or(f.denoise.wet_dry)
        .unwrap_or(1.0);
    let pitch_filter = a
        .pitch_filter
        .or(f.denoise.pitch_filter)
        .unwrap_or(crate::dsp::gain::DEFAULT_PITCH_FILTER);
    let gain = gain_params(att as f32, wet as f32, pitch_filter)?;
    let latency_ms = a
        .latency_ms
        .map(f64::from)
        .or(f.audio.latency_ms)
        .unwrap_or(10.0);
    if !(latency_ms.is_finite() && (0.0..=1000.0).contains(&latency_ms)) {
        return Err(bad("latency-ms", latency_ms, "allowed: 0 to 1000 ms"));
    }
    let buffer_frames = match a.buffer_frames.map(i64::from).or(f.audio.buffer_frames) {
        None | Some(0) => None,
        Some(b) if (16..=96_000).contains(&b) => Some(b as u32),
        Some(b) => {
            return Err(bad(
                "buffer-frames",
                b,
                "allowed: 16 to 96000 frames, or 0 for the device's choice",
            ));
        }
    };
    if let Some(d) = a.duration_s
        && !(d.is_finite() && d > 0.0)
    {
        return Err(bad(
            "duration-s",
            d,
            "allowed: a positive number of seconds",
        ));
    }
    let input_channel = match a.input_channel.map(|c| c as i64).or(f.audio.input_channel) {
        None | Some(-1) => crate::rt::InputChannel::Downmix,
        Some(c) if (0..=255).contains(&c) => crate::rt::InputChannel::Index(c as usize),
        Some(c) => {
            return Err(bad(
                "input-channel",
                c,
                "allowed: -1 (mean of all channels) or 0 to 255",
            ));
        }
    };
    let provider_arg = match (a.model.provider, f.model.provider.as_deref()) {
        (Some(p), _) => p,
        (None, None | Some("auto")) => ProviderArg::Auto,
        (None, Some("cpu")) => ProviderArg::Cpu,
        (None, Some("cuda")) => ProviderArg::Cuda,
        (None, Some(other)) => {
            return Err(bad(
                "model.provider",
                format!("{other:?}"),
                "allowed: \"auto\", \"cpu\", \"cuda\"",
            ));
        }
    };
    let log_level = match f.log.level.as_deref() {
        None | Some("info") => LogLevel::Info,
        Some("error") => LogLevel::Error,
        Some("warn") => LogLevel::Warn,
        Some("debug") => LogLevel::Debug,
        Some(other) => {
            return Err(bad(
                "log.level",
                format!("{other:?}"),
                "allowed: \"error\", \"warn\", \"info\", \"debug\"",
            ));
        }
    };
    let model_given = a
        .model
        .model
        .clone()
        .or_else(|| non_empty(&f.model.path).map(PathBuf::from));
    let virtual_mic = if a.virtual_mic {
        true
    } else if a.no_virtual_mic || a.output.is_some() {
        false
    } else {
        f.audio.virtual_mic.unwrap_or(false)
    };
    Ok(RunOptions {
        model_path: resolve_model(model_given.as_deref())?,
        load: LoadOptions {
            provider: provider(provider_arg),
            intra_threads: 1,
        },
        gain,
        input: a.input.clone().or_else(|| non_empty(&f.audio.input)),
        output: a.output.clone().or_else(|| non_empty(&f.audio.output)),
        virtual_mic,
        input_channel,
        prefill_samples: (latency_ms / 1000.0 * crate::dsp::SAMPLE_RATE_HZ as f64).round() as usize,
        buffer_frames,
        duration_s: a.duration_s,
        stats_every_s: (verbose > 0 || log_level >= LogLevel::Debug).then_some(5.0),
        tap_dir: a.tap.clone(),
        log_level,
        config_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn run_args(extra: &[&str]) -> crate::cli::RunArgs {
        let mut argv = vec!["denoised", "run"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Run(a) => a,
            _ => unreachable!(),
        }
    }

    fn shipped() -> FileConfig {
        read_file_config(&Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/denoised.toml"))
            .unwrap()
    }

    fn merged(extra: &[&str], f: &FileConfig) -> Result<RunOptions> {
        let mut args = vec!["--model", "tests/fixtures/models/identity.onnx"];
        args.extend_from_slice(extra);
        merge_run_options(&run_args(&args), f, 0, None)
    }

    #[test]
    fn shipped_config_documents_every_key_with_the_builtin_defaults() {
        let f = shipped();
        let from_file = merged(&[], &f).unwrap();
        let builtin = merged(&[], &FileConfig::default()).unwrap();
        assert_eq!(from_file.gain, builtin.gain);
        assert_eq!(from_file.prefill_samples, builtin.prefill_samples);
        assert_eq!(from_file.buffer_frames, builtin.buffer_frames);
        assert_eq!(from_file.input_channel, builtin.input_channel);
        assert_eq!(from_file.log_level, LogLevel::Info);
        assert!(
            from_file.virtual_mic,
            "the shipped config turns the virtual microphone on"
        );
        // every key present: a file with all of them set parses into Some(..) everywhere
        assert!(
            f.audio.input.is_some() && f.audio.output.is_some() && f.audio.input_channel.is_some()
        );
        assert!(
            f.audio.virtual_mic.is_some()
                && f.audio.latency_ms.is_some()
                && f.audio.buffer_frames.is_some()
        );
        assert!(
            f.denoise.attenuation_limit_db.is_some()
                && f.denoise.wet_dry.is_some()
                && f.denoise.pitch_filter.is_some()
        );
        assert!(f.model.path.is_some() && f.model.provider.is_some() && f.log.level.is_some());
    }

    #[test]
    fn command_line_overrides_the_file() {
        let mut f = shipped();
        f.denoise.attenuation_limit_db = Some(12.0);
        assert_eq!(merged(&[], &f).unwrap().gain.attenuation_limit_db, 12.0);
        assert_eq!(
            merged(&["--attenuation-limit-db", "6"], &f)
                .unwrap()
                .gain
                .attenuation_limit_db,
            6.0
        );
        assert!(!merged(&["--no-virtual-mic"], &f).unwrap().virtual_mic);
        f.denoise.pitch_filter = Some(false);
        assert!(!merged(&[], &f).unwrap().gain.pitch_filter);
        assert!(merged(&["--pitch-filter"], &f).unwrap().gain.pitch_filter);
        assert!(
            !merged(&["--pitch-filter=false"], &shipped())
                .unwrap()
                .gain
                .pitch_filter
        );
    }

    #[test]
    fn bad_values_name_the_key_and_exit_78() {
        type BadValue = (&'static str, fn(&mut FileConfig));
        let cases: [BadValue; 7] = [
            ("attenuation-limit-db", |f| {
                f.denoise.attenuation_limit_db = Some(-1.0)
            }),
            ("wet-dry", |f| f.denoise.wet_dry = Some(1.5)),
            ("latency-ms", |f| f.audio.latency_ms = Some(5000.0)),
            ("buffer-frames", |f| f.audio.buffer_frames = Some(3)),
            ("input-channel", |f| f.audio.input_channel = Some(-7)),
            ("model.provider", |f| f.model.provider = Some("tpu".into())),
            ("log.level", |f| f.log.level = Some("loud".into())),
        ];
        for (key, spoil) in cases {
            let mut f = FileConfig::default();
            spoil(&mut f);
            let e = merged(&[], &f)
                .err()
                .unwrap_or_else(|| panic!("{key} accepted"));
            assert_eq!(e.exit_code(), crate::error::EX_CONFIG);
            assert!(e.to_string().contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_types_are_errors() {
        let d = std::env::temp_dir().join(format!("denoised-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        for (text, key) in [
            ("[audio]\nlatncy_ms = 5\n", "latncy_ms"),
            ("[denoise]\nwet_dry = \"high\"\n", "wet_dry"),
            ("[denoise]\npitch_filter = \"yes\"\n", "pitch_filter"),
            ("[sound]\n", "sound"),
        ] {
            let p = d.join("c.toml");
            std::fs::write(&p, text).unwrap();
            let e = read_file_config(&p).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::EX_CONFIG);
            assert!(
                e.to_string().contains(key) || e.to_string().contains("invalid type"),
                "{text}: {e}"
            );
        }
    }
}
