//! Device plumbing (ordinary threads, not real time): listing devices, choosing them by
//! name, and building cpal streams whose callbacks are the `rt` sides. Any sample format
//! cpal offers is converted in the callback with cpal's `Sample`/`FromSample`.

pub mod virtual_mic;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use cpal::traits::{DeviceTrait, HostTrait};
use cpal::{BufferSize, Device, SampleFormat, Stream, StreamConfig};

use crate::dsp::SAMPLE_RATE_HZ;
use crate::error::{Error, Result};
use crate::rt::{CaptureSide, PlaybackSide, ReturnOnDrop, RtStats, on_stream_error};

/// Input or output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

/// One device as `denoised devices` shows it.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    pub name: String,
    pub direction: Direction,
    pub is_default: bool,
    pub channels: u16,
    pub rate_hz: u32,
    pub format: String,
    pub supports_48k: bool,
}

fn device_error(msg: impl std::fmt::Display) -> Error {
    Error::Device {
        msg: msg.to_string(),
    }
}

fn name_of(d: &Device) -> String {
    d.description()
        .map(|x| x.name().to_string())
        .unwrap_or_else(|_| "(unnamed)".into())
}

/// The device's default configuration in `dir`, if it works in that direction at all.
fn default_config(
    d: &Device,
    dir: Direction,
) -> std::result::Result<cpal::SupportedStreamConfig, String> {
    match dir {
        Direction::Input => d.default_input_config(),
        Direction::Output => d.default_output_config(),
    }
    .map_err(|e| e.to_string())
}

/// Does the device offer 48 kHz in `dir` (so no resampling is needed)?
fn offers_48k(d: &Device, dir: Direction) -> bool {
    let in_range = |r: cpal::SupportedStreamConfigRange| {
        r.min_sample_rate() <= SAMPLE_RATE_HZ && r.max_sample_rate() >= SAMPLE_RATE_HZ
    };
    match dir {
        Direction::Input => d.supported_input_configs().map(|mut it| it.any(in_range)),
        Direction::Output => d.supported_output_configs().map(|mut it| it.any(in_range)),
    }
    .unwrap_or(false)
}

/// Keeps alsa-lib's probing messages ("Cannot get card index", /dev/dsp, ...) off stderr
/// while we enumerate, as cpal's `enumerate` example does, and libjack's (see
/// `quiet_jack`). The alsa handler is per thread and stays installed; its buffer is
/// dropped with the guard.
fn quiet_alsa() -> Option<std::rc::Rc<std::cell::RefCell<alsa::Output>>> {
    quiet_jack();
    alsa::Output::local_error_handler().ok()
}

/// ALSA's JACK plugin (libasound2-plugins) links libjack, which prints "jack server is not
/// running" and the like straight to stderr whenever enumeration probes the `jack` PCM.
/// Where libjack is installed, load it first (the plugin then shares this copy) and give
/// it silent error and info callbacks; where it is not, there is nothing to silence.
fn quiet_jack() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        type Callback = extern "C" fn(*const std::ffi::c_char);
        extern "C" fn ignore(_msg: *const std::ffi::c_char) {}
        // SAFETY: dlopen/dlsym with NUL-terminated names; the library is never closed, so
        // the callback pointers it keeps stay valid; the symbols have the signature
        // `void jack_set_*_function(void (*)(const char *))` in jack/jack.h.
        unsafe {
            let lib = libc::dlopen(c"libjack.so.0".as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
            if lib.is_null() {
                return;
            }
            for name in [c"jack_set_error_function", c"jack_set_info_function"] {
                let f = libc::dlsym(lib, name.as_ptr());
                if !f.is_null() {
                    let set: extern "C" fn(Callback) = std::mem::transmute(f);
                    set(ignore);
                }
            }
        }
    });
}

/// Every input and output device of the default host.
pub fn list_devices() -> Result<Vec<DeviceInfo>> {
    let _quiet = quiet_alsa();
    let host = cpal::default_host();
    let def_in = host.default_input_device().map(|d| name_of(&d));
    let def_out = host.default_output_device().map(|d| name_of(&d));
    let mut out = Vec::new();
    // the defaults first: on ALSA they are virtual devices ("default") that the
    // enumeration may not list by the same name
    let defaults = [host.default_input_device(), host.default_output_device()];
    let listed: Vec<Device> = host.devices().map_err(device_error)?.collect();
    let mut seen = std::collections::HashSet::new();
    for d in defaults.into_iter().flatten().chain(listed) {
        let name = name_of(&d);
        if !seen.insert(name.clone()) {
            continue;
        }
        for (dir, def) in [(Direction::Input, &def_in), (Direction::Output, &def_out)] {
            if let Ok(c) = default_config(&d, dir) {
                out.push(DeviceInfo {
                    is_default: def.as_deref() == Some(&name),
                    name: name.clone(),
                    direction: dir,
                    channels: c.channels(),
                    rate_hz: c.sample_rate(),
                    format: format!("{}", c.sample_format()),
                    supports_48k: offers_48k(&d, dir),
                });
            }
        }
    }
    Ok(out)
}

/// The device named `query` (exact name, else a unique substring), or the default.
pub fn find_device(direction: Direction, query: Option<&str>) -> Result<Device> {
    let _quiet = quiet_alsa();
    let host = cpal::default_host();
    let what = if direction == Direction::Input {
        "input"
    } else {
        "output"
    };
    let Some(q) = query else {
        let d = if direction == Direction::Input {
            host.default_input_device()
        } else {
            host.default_output_device()
        };
        return d.ok_or_else(|| {
            device_error(format!(
                "no default {what} device (is a sound server or card available?)"
            ))
        });
    };
    let default = if direction == Direction::Input {
        host.default_input_device()
    } else {
        host.default_output_device()
    };
    let mut seen = std::collections::HashSet::new();
    let candidates: Vec<Device> = default
        .into_iter()
        .chain(host.devices().map_err(device_error)?)
        .filter(|d| default_config(d, direction).is_ok() && seen.insert(name_of(d)))
        .collect();
    if let Some(d) = candidates.iter().find(|d| name_of(d) == q) {
        return Ok(d.clone());
    }
    let matches: Vec<&Device> = candidates
        .iter()
        .filter(|d| name_of(d).contains(q))
        .collect();
    match matches.len() {
        1 => Ok(matches[0].clone()),
        0 => Err(device_error(format!(
            "no {what} device matches {q:?}; `denoised devices` lists them"
        ))),
        _ => Err(device_error(format!(
            "{q:?} matches several {what} devices ({}); give more of the name",
            matches
                .iter()
                .map(|d| name_of(d))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The stream configuration we open a device with: 48 kHz if it offers it, else its
/// default rate; its default channel count and sample format; `buffer_frames` if given.
pub fn stream_config(
    device: &Device,
    direction: Direction,
    buffer_frames: Option<u32>,
) -> Result<(StreamConfig, SampleFormat)> {
    let def = default_config(device, direction)
        .map_err(|e| device_error(format!("{}: {e}", name_of(device))))?;
    let ok = offers_48k(device, direction);
    // 48 kHz when the device offers it (no resampling); otherwise its default rate, and the
    // worker resamples
    let rate_hz = if ok {
        SAMPLE_RATE_HZ
    } else {
        def.sample_rate()
    };
    let config = StreamConfig {
        channels: def.channels(),
        sample_rate: rate_hz,
        buffer_size: buffer_frames.map_or(BufferSize::Default, BufferSize::Fixed),
    };
    Ok((config, def.sample_format()))
}

macro_rules! with_sample_type {
    ($fmt:expr, $T:ident => $body:expr) => {
        match $fmt {
            SampleFormat::I8 => {
                type $T = i8;
                $body
            }
            SampleFormat::I16 => {
                type $T = i16;
                $body
            }
            SampleFormat::I32 => {
                type $T = i32;
                $body
            }
            SampleFormat::I64 => {
                type $T = i64;
                $body
            }
            SampleFormat::U8 => {
                type $T = u8;
                $body
            }
            SampleFormat::U16 => {
                type $T = u16;
                $body
            }
            SampleFormat::U32 => {
                type $T = u32;
                $body
            }
            SampleFormat::U64 => {
                type $T = u64;
                $body
            }
            SampleFormat::F32 => {
                type $T = f32;
                $body
            }
            SampleFormat::F64 => {
                type $T = f64;
                $body
            }
            other => {
                return Err(device_error(format!(
                    "sample format {other} is not supported"
                )))
            }
        }
    };
}

fn gone(e: &cpal::Error) -> bool {
    matches!(
        e.kind(),
        cpal::ErrorKind::DeviceNotAvailable | cpal::ErrorKind::HostUnavailable
    )
}

/// Build (not start) the capture stream; its callback is `CaptureSide::on_input`, and the
/// state returns through `side`'s channel when the stream is dropped.
pub fn build_input(
    device: &Device,
    config: &StreamConfig,
    format: SampleFormat,
    mut side: ReturnOnDrop<CaptureSide>,
    stats: Arc<RtStats>,
    retired: Arc<AtomicBool>,
) -> Result<Stream> {
    with_sample_type!(format, T => {
        device
            .build_input_stream::<T, _, _>(
                *config,
                move |data: &[T], _| side.get().on_input(data),
                move |e| on_stream_error(&stats, gone(&e), &retired),
                None,
            )
            .map_err(|e| device_error(format!("{}: cannot open for capture: {e}", name_of(device))))
    })
}

/// Build (not start) the playback stream; its callback is `PlaybackSide::on_output`.
pub fn build_output(
    device: &Device,
    config: &StreamConfig,
    format: SampleFormat,
    mut side: ReturnOnDrop<PlaybackSide>,
    stats: Arc<RtStats>,
    retired: Arc<AtomicBool>,
) -> Result<Stream> {
    with_sample_type!(format, T => {
        device
            .build_output_stream::<T, _, _>(
                *config,
                move |data: &mut [T], _| side.get().on_output(data),
                move |e| on_stream_error(&stats, gone(&e), &retired),
                None,
            )
            .map_err(|e| device_error(format!("{}: cannot open for playback: {e}", name_of(device))))
    })
}

pub fn device_name(d: &Device) -> String {
    name_of(d)
}
