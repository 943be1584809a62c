//! `denoised service install|uninstall`: put the systemd user unit in place (with this
//! binary's path filled in) and enable/disable it with `systemctl --user`.

use std::path::PathBuf;
use std::process::Command;

use crate::cli::ServiceCommand;
use crate::error::{Error, Result};

const UNIT: &str = include_str!("../../systemd/denoised.service");
const UNIT_NAME: &str = "denoised.service";

fn err(msg: impl std::fmt::Display) -> Error {
    Error::Output {
        path: unit_path(),
        msg: msg.to_string(),
    }
}

/// ~/.config/systemd/user/denoised.service (honouring $XDG_CONFIG_HOME).
pub fn unit_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from(".config"));
    base.join("systemd/user").join(UNIT_NAME)
}

/// The unit text for this installation.
pub fn unit_text() -> Result<String> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| err(format!("cannot find this binary: {e}")))?;
    Ok(UNIT
        .replace("@BIN@", &exe.display().to_string())
        .replace("@REPO@", env!("CARGO_MANIFEST_DIR")))
}

fn systemctl(args: &[&str]) -> Result<()> {
    let out = Command::new("systemctl").arg("--user").args(args).output().map_err(|e| {
        err(format!("cannot run systemctl ({e}); start the unit by hand or run `denoised run --virtual-mic`"))
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(err(format!(
            "`systemctl --user {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

pub fn run(cmd: ServiceCommand) -> Result<i32> {
    let path = unit_path();
    match cmd {
        ServiceCommand::Install => {
            let text = unit_text()?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
            }
            let tmp = path.with_extension("service.tmp");
            std::fs::write(&tmp, text).map_err(|e| err(format!("cannot write: {e}")))?;
            std::fs::rename(&tmp, &path).map_err(|e| err(format!("cannot install: {e}")))?;
            eprintln!("denoised: installed {}", path.display());
            systemctl(&["daemon-reload"])?;
            systemctl(&["enable", "--now", UNIT_NAME])?;
            eprintln!(
                "denoised: enabled and started; `denoised status` shows it, `journalctl --user -u denoised` its log"
            );
        }
        ServiceCommand::Uninstall => {
            let stopped = systemctl(&["disable", "--now", UNIT_NAME]);
            if path.exists() {
                std::fs::remove_file(&path).map_err(|e| err(format!("cannot remove: {e}")))?;
                eprintln!("denoised: removed {}", path.display());
            }
            let _ = systemctl(&["daemon-reload"]);
            stopped?;
        }
    }
    Ok(0)
}
