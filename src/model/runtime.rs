//! Finding and starting ONNX Runtime (loaded at run time with `ort`'s `load-dynamic`), and
//! choosing the execution provider.
//!
//! ONNX Runtime allows one environment per process, ever, so it lives in a `OnceLock`.
//! Library lookup order: `ORT_DYLIB_PATH` (an explicit choice wins), then `.ort/gpu/` (from
//! `scripts/setup --gpu`) and `.ort/lib/` in the repository the binary was built from, then
//! `../lib/denoised/` relative to the executable (an installed layout).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Where `scripts/setup` puts the library, relative to the repository root.
pub const REPO_ORT_DIR: &str = ".ort/lib";
/// Where `scripts/setup --gpu` puts the CUDA-enabled build.
pub const REPO_ORT_GPU_DIR: &str = ".ort/gpu";
const LIB_NAME: &str = "libonnxruntime.so";

/// Which execution provider to run the model on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// CUDA when it loads, otherwise CPU.
    Auto,
    Cpu,
    Cuda,
}

/// The loaded library's path and the process's one environment (kept alive for the process).
static RUNTIME: OnceLock<std::result::Result<(PathBuf, ort::environment::Environment), String>> =
    OnceLock::new();

fn candidates() -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        c.push(PathBuf::from(p));
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    // the GPU build (scripts/setup --gpu) also runs on CPU, so it is preferred when present
    c.push(repo.join(REPO_ORT_GPU_DIR).join(LIB_NAME));
    c.push(repo.join(REPO_ORT_DIR).join(LIB_NAME));
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        // target/release/denoised -> <repo>/.ort/lib
        c.push(dir.join("../..").join(REPO_ORT_DIR).join(LIB_NAME));
        c.push(dir.join("../lib/denoised").join(LIB_NAME));
    }
    c
}

/// Make the CUDA provider's dependencies findable: `scripts/setup --gpu` puts NVIDIA's
/// CUDA 13 and cuDNN 9 libraries (from PyPI) under `<ort dir>/nvidia/*/lib`, which is not
/// on the loader's search path. Loading them once with RTLD_GLOBAL, before the provider
/// library is opened, lets it resolve them by soname (what onnxruntime's own Python
/// package does). Libraries are loaded in passes until no more succeed, so their mutual
/// dependencies need no hand-kept order. Returns how many were loaded.
pub fn preload_cuda_libraries() -> usize {
    static LOADED: OnceLock<usize> = OnceLock::new();
    *LOADED.get_or_init(|| {
        let Ok((lib, _)) = environment() else {
            return 0;
        };
        let Some(nvidia) = lib.parent().map(|d| d.join("nvidia")) else {
            return 0;
        };
        let mut pending: Vec<PathBuf> = Vec::new();
        for pkg in std::fs::read_dir(&nvidia).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(pkg.path().join("lib"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.contains(".so") {
                    pending.push(f.path());
                }
            }
        }
        pending.sort();
        let mut loaded = 0;
        loop {
            let before = pending.len();
            pending.retain(|p| {
                let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
                    return false;
                };
                // SAFETY: dlopen with a valid NUL-terminated path; the handle is kept
                // (never dlclosed) so the library stays for the life of the process.
                let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
                h.is_null()
            });
            loaded += before - pending.len();
            if pending.len() == before {
                break;
            }
        }
        loaded
    })
}

/// Load ONNX Runtime and build the process-wide environment (once). Returns the library path.
pub fn ensure_runtime() -> Result<PathBuf> {
    environment().map(|(p, _)| p.clone())
}

/// The library path and the process's ONNX Runtime environment, loading it on first use.
pub fn environment() -> Result<(&'static PathBuf, &'static ort::environment::Environment)> {
    let r = RUNTIME.get_or_init(|| {
        let cands = candidates();
        let explicit = std::env::var_os("ORT_DYLIB_PATH").is_some();
        let found = cands.iter().find(|p| p.is_file()).cloned();
        let path = match found {
            Some(p) => p,
            None => {
                let list = cands
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(format!("MISSING{list}"));
            }
        };
        if explicit && !cands[0].is_file() {
            return Err(format!("MISSING{}", cands[0].display()));
        }
        let builder = ort::init_from(&path).map_err(|e| format!("{}\u{0}{e}", path.display()))?;
        let env = builder
            .with_name("denoised")
            .with_telemetry(false)
            .build()
            .map_err(|e| format!("{}\u{0}{e}", path.display()))?;
        Ok((path.canonicalize().unwrap_or(path), env))
    });
    match r {
        Ok((p, env)) => Ok((p, env)),
        Err(e) if e.starts_with("MISSING") => Err(Error::RuntimeMissing {
            searched: e["MISSING".len()..].to_string(),
        }),
        Err(e) => {
            let (p, msg) = e.split_once('\u{0}').unwrap_or(("?", e));
            Err(Error::RuntimeLoad {
                path: p.into(),
                msg: msg.to_string(),
            })
        }
    }
}
