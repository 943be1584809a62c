//! The "Denoised microphone" that call apps can pick: a null sink that receives the clean
//! audio, and a remap source named "Denoised microphone" on the sink's monitor. Created
//! and removed through `pactl`, so it works on PulseAudio and on PipeWire's pulse server.
//! Modules left behind by a crash are found by their names and removed at the next start.

use std::process::Command;

use crate::error::{Error, Result};

/// The null sink `denoised run --virtual-mic` plays into.
pub const SINK_NAME: &str = "denoised_mic_sink";
/// The source call apps record from.
pub const SOURCE_NAME: &str = "denoised_mic";

fn server_error(msg: impl std::fmt::Display) -> Error {
    Error::SoundServer {
        msg: msg.to_string(),
    }
}

fn pactl(args: &[&str]) -> Result<String> {
    let out = Command::new("pactl").args(args).output().map_err(|e| {
        server_error(format!(
            "cannot run pactl ({e}); install pulseaudio-utils (PulseAudio) or pipewire-pulse"
        ))
    })?;
    if !out.status.success() {
        return Err(server_error(format!(
            "`pactl {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Send this process's playback streams to the virtual microphone's sink: libpulse
/// (under ALSA's pulse plugin, which cpal uses) honours $PULSE_SINK when a stream opens.
///
/// Changing the environment is only sound while no other thread can read it, so this
/// checks that the process still has a single thread and refuses otherwise.
pub fn route_playback_to_sink() -> Result<()> {
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0);
    if threads != 1 {
        return Err(server_error(format!(
            "cannot route playback to the virtual microphone: the process already runs {threads} threads"
        )));
    }
    // SAFETY: the process has exactly one thread (checked above), so nothing can read or
    // write the environment concurrently.
    unsafe { std::env::set_var("PULSE_SINK", SINK_NAME) };
    Ok(())
}

/// Is a pulse-compatible server reachable?
pub fn server_available() -> Result<()> {
    pactl(&["info"]).map(|_| ()).map_err(|e| {
        server_error(format!(
            "no PulseAudio-compatible sound server is reachable, so the virtual microphone cannot be created ({e})"
        ))
    })
}

/// Module indices of ours that are loaded now (from this or an earlier, crashed run).
pub fn our_modules() -> Result<Vec<u32>> {
    let list = pactl(&["list", "short", "modules"])?;
    Ok(list
        .lines()
        .filter(|l| {
            l.contains(&format!("sink_name={SINK_NAME}"))
                || l.contains(&format!("source_name={SOURCE_NAME}"))
        })
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect())
}

/// Unload modules left by an earlier run. Returns how many were removed.
pub fn remove_stale() -> Result<usize> {
    let mods = our_modules()?;
    // the source depends on the sink: unload in reverse order of loading
    for m in mods.iter().rev() {
        pactl(&["unload-module", &m.to_string()])?;
    }
    Ok(mods.len())
}

/// The loaded sink and source; removed on `remove()` or drop.
pub struct VirtualMic {
    modules: Vec<u32>,
}

impl VirtualMic {
    /// Create the sink and the "Denoised microphone" source (removing stale ones first).
    pub fn create() -> Result<Self> {
        server_available()?;
        remove_stale()?;
        let sink = pactl(&[
            "load-module",
            "module-null-sink",
            &format!("sink_name={SINK_NAME}"),
            "sink_properties=device.description=\"Denoised\\ microphone\\ sink\"",
        ])?;
        let sink: u32 = sink
            .trim()
            .parse()
            .map_err(|_| server_error(format!("unexpected pactl reply {sink:?}")))?;
        let mut me = Self {
            modules: vec![sink],
        };
        let source = pactl(&[
            "load-module",
            "module-remap-source",
            &format!("master={SINK_NAME}.monitor"),
            &format!("source_name={SOURCE_NAME}"),
            "source_properties=device.description=\"Denoised\\ microphone\"",
        ])?;
        let source: u32 = source
            .trim()
            .parse()
            .map_err(|_| server_error(format!("unexpected pactl reply {source:?}")))?;
        me.modules.push(source);
        Ok(me)
    }

    /// Are our modules still loaded (a restarted sound server forgets them)?
    pub fn is_loaded(&self) -> Result<bool> {
        let now = our_modules()?;
        Ok(self.modules.iter().all(|m| now.contains(m)))
    }

    /// Forget the modules without unloading them: after a sound-server restart their
    /// indices are void and may already name someone else's (or our new) modules.
    pub fn forget(&mut self) {
        self.modules.clear();
    }

    /// Unload both modules.
    pub fn remove(mut self) -> Result<()> {
        self.unload()
    }

    fn unload(&mut self) -> Result<()> {
        let mut first_err = None;
        while let Some(m) = self.modules.pop() {
            if let Err(e) = pactl(&["unload-module", &m.to_string()]) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for VirtualMic {
    fn drop(&mut self) {
        let _ = self.unload();
    }
}
