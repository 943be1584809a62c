//! What the user typed: clap types only. `config.rs` turns these into validated settings;
//! nothing past `main` sees clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Real-time speech denoiser: cleans WAV files and live microphones with a small
/// causal VAE run by ONNX Runtime.
#[derive(Debug, Parser)]
#[command(name = "denoised", version, propagate_version = true)]
pub struct Cli {
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress bar and no summary; errors are still printed.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Denoise WAV files (any PCM/float format, any rate, any channel count).
    Clean(CleanArgs),
    /// Inspect a model file.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Measure speed: offline real-time factor and per-hop streaming latency.
    Bench(BenchArgs),
    /// Denoise a microphone live and play the result (or offer it as a virtual microphone).
    Run(RunArgs),
    /// List audio input and output devices.
    Devices,
    /// Show the running daemon's state, devices, latency and counters.
    Status {
        /// One line of JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change a setting of the running daemon.
    Set {
        #[arg(value_enum)]
        setting: SettingArg,
        /// The new value (dB for attenuation-limit-db, 0..1 for wet-dry).
        value: String,
    },
    /// Bypass the denoiser in the running daemon (crossfaded), or end the bypass.
    Bypass {
        #[arg(value_enum)]
        state: OnOff,
    },
    /// Make the running daemon re-read its configuration file (like SIGHUP).
    Reload,
    /// Install or remove the systemd user service.
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SettingArg {
    AttenuationLimitDb,
    WetDry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Copy the unit to ~/.config/systemd/user and `systemctl --user enable --now` it.
    Install,
    /// `systemctl --user disable --now` the unit and remove it.
    Uninstall,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file [default: $XDG_CONFIG_HOME/denoised/config.toml if present];
    /// flags given here override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Input device: a name or a unique part of one [default: the system default]
    #[arg(long, value_name = "NAME")]
    pub input: Option<String>,
    /// Output device: a name or a unique part of one [default: the system default]
    #[arg(long, value_name = "NAME", conflicts_with = "virtual_mic")]
    pub output: Option<String>,
    /// Create a "Denoised microphone" for call apps (PulseAudio/PipeWire) and play into it.
    #[arg(long, conflicts_with = "no_virtual_mic")]
    pub virtual_mic: bool,
    /// Do not create the virtual microphone (overrides the configuration file).
    #[arg(long)]
    pub no_virtual_mic: bool,
    /// Input channel to denoise, 0-based [default: the mean of all channels]
    #[arg(long, value_name = "N")]
    pub input_channel: Option<usize>,
    /// Most noise reduction applied to any frequency, in dB (0 = none, 100 = unlimited) [default: 30]
    #[arg(long, value_name = "DB")]
    pub attenuation_limit_db: Option<f32>,
    /// Mix of denoised (1.0) and original (0.0) audio [default: 1.0]
    #[arg(long, value_name = "X")]
    pub wet_dry: Option<f32>,
    /// RNNoise's pitch filter before the gains (`--pitch-filter=false`: off) [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub pitch_filter: Option<bool>,
    /// Output safety margin (ring pre-fill) in ms; adds to the latency [default: 10]
    #[arg(long, value_name = "MS")]
    pub latency_ms: Option<f32>,
    /// Device buffer size in frames [default: the device's choice]
    #[arg(long, value_name = "FRAMES")]
    pub buffer_frames: Option<u32>,
    /// Stop after this many seconds [default: run until Ctrl-C / SIGTERM]
    #[arg(long, value_name = "S")]
    pub duration_s: Option<f64>,
    /// Record what the denoiser heard and what it made of it, hop for hop, into
    /// DIR/input.wav and DIR/output.wav (mono, 48 kHz, float; for bug reports). DIR must
    /// not hold them already.
    #[arg(long, value_name = "DIR")]
    pub tap: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Contract metadata, inputs and outputs, parameter count and SHA-256 of a model.
    Info {
        /// Model file [default: the shipped models/denoiser.onnx]
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderArg {
    /// CUDA if it loads, else CPU
    Auto,
    Cpu,
    Cuda,
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// ONNX model file [default: the shipped models/denoiser.onnx]
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Execution provider [default: auto]; the one really used is always logged.
    #[arg(long, value_enum)]
    pub provider: Option<ProviderArg>,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// WAV files or folders (searched recursively for *.wav).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Output file (one input file) or folder (several inputs or a folder; structure is mirrored).
    #[arg(short, long, value_name = "OUTPUT")]
    pub output: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Most noise reduction applied to any frequency, in dB (0 = none, 100 = unlimited).
    #[arg(long, value_name = "DB", default_value_t = crate::dsp::gain::DEFAULT_ATTENUATION_LIMIT_DB)]
    pub attenuation_limit_db: f32,
    /// Mix of denoised (1.0) and original (0.0) audio.
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    pub wet_dry: f32,
    /// RNNoise's pitch filter before the gains (`--pitch-filter=false`: off) [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub pitch_filter: Option<bool>,
    /// Files processed in parallel [default: number of CPU cores].
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,
    /// ONNX Runtime intra-op threads per file.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: usize,
    /// STFT frames (10 ms each) per model call.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub frames_per_call: usize,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Seconds of generated audio for the offline measurement.
    #[arg(long, value_name = "S", default_value_t = 60.0)]
    pub seconds: f64,
    /// Hops (10 ms) timed one by one for the streaming latency percentiles.
    #[arg(long, value_name = "N", default_value_t = 3000)]
    pub hops: usize,
    /// Time the hops with the pitch filter (`--pitch-filter=false`: without) [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub pitch_filter: Option<bool>,
    /// A second model (B) timed against the first (A) in this process: the two take turns
    /// of --turn-hops hops, so the machine's drift slows both alike; prints B's model-call
    /// p50 over A's with a 95 % interval.
    #[arg(long, value_name = "FILE")]
    pub against: Option<PathBuf>,
    /// Hops each model runs per turn with --against (1: they alternate every hop, and each
    /// call finds the other model's weights in the caches).
    #[arg(long, value_name = "N", default_value_t = 50, requires = "against")]
    pub turn_hops: usize,
}
