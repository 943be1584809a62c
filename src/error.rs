//! The library's error type. Each variant names the thing that failed and says what the
//! user can do about it; the binary adds context with `anyhow` and maps variants to exit
//! codes (`exit_code`). Nothing here is used on the real-time path.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// ONNX Runtime's shared library was not found: run `scripts/setup` or set ORT_DYLIB_PATH.
    #[error(
        "ONNX Runtime library not found (looked for {searched}); run `scripts/setup` to install it into .ort/, \
         or set ORT_DYLIB_PATH to a libonnxruntime.so of version 1.31"
    )]
    RuntimeMissing { searched: String },

    /// The ONNX Runtime library exists but could not be loaded (wrong version or architecture).
    #[error("loading ONNX Runtime from {path}: {msg}; install version 1.31.1 with `scripts/setup`")]
    RuntimeLoad { path: PathBuf, msg: String },

    /// The model file is missing, corrupt or does not follow the contract in models/README.md.
    #[error("model file {path}: {msg}")]
    Model { path: PathBuf, msg: String },

    /// The CUDA execution provider was requested but cannot run here.
    #[error(
        "CUDA execution provider unavailable: {msg}; install the GPU runtime with `scripts/setup --gpu`, \
         or use --provider cpu"
    )]
    CudaUnavailable { msg: String },

    /// ONNX Runtime failed while running the model.
    #[error("running model {path}: {msg}")]
    Inference { path: PathBuf, msg: String },

    /// An input file could not be read or is not audio we can process.
    #[error("{path}: {msg}")]
    Input { path: PathBuf, msg: String },

    /// An output could not be written; nothing partial is left behind.
    #[error("{path}: {msg}")]
    Output { path: PathBuf, msg: String },

    /// An audio device is missing, ambiguous or cannot be opened.
    #[error("audio device: {msg}")]
    Device { msg: String },

    /// The sound server (PulseAudio or PipeWire's pulse server) could not do what we asked.
    #[error("sound server: {msg}")]
    SoundServer { msg: String },

    /// A configuration value is out of range or unknown.
    #[error("bad configuration: `{key}` = {value}: {allowed}")]
    Config {
        key: String,
        value: String,
        allowed: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// sysexits.h: a configuration error; systemd's RestartPreventExitStatus=78 stops a loop.
pub const EX_CONFIG: i32 = 78;

impl Error {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config { .. } => EX_CONFIG,
            _ => 1,
        }
    }

    pub(crate) fn model(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        Error::Model {
            path: path.into(),
            msg: msg.to_string(),
        }
    }

    pub(crate) fn input(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        Error::Input {
            path: path.into(),
            msg: msg.to_string(),
        }
    }

    pub(crate) fn output(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        Error::Output {
            path: path.into(),
            msg: msg.to_string(),
        }
    }
}
