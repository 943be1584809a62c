//! Reading and writing WAV files with `hound`: 8/16/24/32-bit integer PCM and 32-bit float,
//! any channel count; 64-bit float, which hound cannot handle, goes through `wav_f64`.
//! Samples become f32 in [-1, 1], one Vec per channel. Writing goes to a temporary file in
//! the destination folder, which is renamed over the destination only when complete, so a
//! failure never leaves a partial output behind.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hound::{SampleFormat, WavReader, WavSpec, WavWriter};

use crate::error::{Error, Result};
use crate::offline::wav_f64;

/// What we can read, for error messages.
const SUPPORTED: &str = "8/16/24/32-bit integer PCM and 32/64-bit float";

/// Sample rates we accept, in Hz: from narrow-band telephony to 8x oversampled studio audio.
pub const MIN_RATE_HZ: u32 = 4_000;
pub const MAX_RATE_HZ: u32 = 384_000;

/// Decoded audio: its original format and one f32 buffer per channel.
pub struct Audio {
    pub spec: WavSpec,
    pub channels: Vec<Vec<f32>>,
}

impl Audio {
    pub fn frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }
}

fn describe(spec: &WavSpec) -> String {
    match spec.sample_format {
        SampleFormat::Int => format!("{}-bit integer PCM", spec.bits_per_sample),
        SampleFormat::Float => format!("{}-bit float", spec.bits_per_sample),
    }
}

/// Check that we can process audio of this format (shared by reading and planning).
pub fn check_spec(path: &Path, spec: &WavSpec) -> Result<()> {
    let supported = match spec.sample_format {
        SampleFormat::Int => matches!(spec.bits_per_sample, 8 | 16 | 24 | 32),
        SampleFormat::Float => matches!(spec.bits_per_sample, 32 | 64),
    };
    if !supported {
        return Err(Error::input(
            path,
            format!(
                "unsupported encoding {}; supported: {SUPPORTED}",
                describe(spec)
            ),
        ));
    }
    if spec.channels == 0 {
        return Err(Error::input(path, "the header declares 0 channels"));
    }
    if !(MIN_RATE_HZ..=MAX_RATE_HZ).contains(&spec.sample_rate) {
        return Err(Error::input(
            path,
            format!(
                "sample rate {} Hz is outside {MIN_RATE_HZ}..{MAX_RATE_HZ} Hz",
                spec.sample_rate
            ),
        ));
    }
    Ok(())
}

fn open_error(path: &Path, e: hound::Error) -> Error {
    let msg = match e {
        // hound reports a header cut short either as EOF or with this message of its own
        hound::Error::IoError(ref io)
            if io.kind() == std::io::ErrorKind::UnexpectedEof
                || io.to_string().contains("Failed to read enough bytes") =>
        {
            "not a WAV file, or its header is truncated".to_string()
        }
        hound::Error::IoError(io) => format!("cannot read: {io}"),
        hound::Error::FormatError(m) if m.contains("bits per sample") || m.contains("format") => {
            format!("unsupported encoding ({m}); supported: {SUPPORTED}")
        }
        hound::Error::FormatError(m) => format!("not a valid WAV file ({m})"),
        hound::Error::Unsupported => {
            format!(
                "unsupported encoding (only {SUPPORTED} WAV can be read; A-law, mu-law and compressed WAV cannot)"
            )
        }
        other => format!("not a readable WAV file ({other})"),
    };
    Error::input(path, msg)
}

/// An opened input: hound's reader, or the layout of a 64-bit float file.
enum Opened {
    Hound(WavReader<BufReader<File>>),
    F64(wav_f64::Layout),
}

fn open(path: &Path) -> Result<Opened> {
    let f64_layout = || {
        wav_f64::layout(path)?
            .ok_or_else(|| Error::input(path, "not a valid WAV file (64-bit float header)"))
    };
    match WavReader::open(path) {
        // hound parses an extensible 64-bit float header but cannot read its samples
        Ok(r)
            if r.spec().sample_format == SampleFormat::Float && r.spec().bits_per_sample == 64 =>
        {
            Ok(Opened::F64(f64_layout()?))
        }
        Ok(r) => Ok(Opened::Hound(r)),
        // a plain (format tag 3) 64-bit float header is rejected by hound outright
        Err(e @ hound::Error::FormatError(_)) => match wav_f64::layout(path)? {
            Some(layout) => Ok(Opened::F64(layout)),
            None => Err(open_error(path, e)),
        },
        Err(e) => Err(open_error(path, e)),
    }
}

/// Read the header only: the format, and the frames the header declares.
pub fn probe(path: &Path) -> Result<(WavSpec, u64)> {
    let (spec, frames) = match open(path)? {
        Opened::Hound(r) => (r.spec(), u64::from(r.duration())),
        Opened::F64(l) => (
            l.spec,
            l.declared_samples / u64::from(l.spec.channels.max(1)),
        ),
    };
    check_spec(path, &spec)?;
    Ok((spec, frames))
}

/// Read a whole file into f32 channels.
pub fn read(path: &Path) -> Result<Audio> {
    let mut r = match open(path)? {
        Opened::Hound(r) => r,
        Opened::F64(layout) => return read_f64(path, layout),
    };
    let spec = r.spec();
    check_spec(path, &spec)?;
    let declared = r.len() as usize;
    if declared == 0 {
        return Err(no_audio(path));
    }
    let mut interleaved = Vec::with_capacity(declared);
    let truncated = |got: usize| truncated(path, declared, got);
    match spec.sample_format {
        SampleFormat::Float => {
            for s in r.samples::<f32>() {
                interleaved.push(s.map_err(|_| truncated(interleaved.len()))?);
            }
        }
        SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            for s in r.samples::<i32>() {
                interleaved.push(s.map_err(|_| truncated(interleaved.len()))? as f32 * scale);
            }
        }
    }
    if interleaved.len() < declared {
        return Err(truncated(interleaved.len()));
    }
    Ok(deinterleave(spec, &interleaved))
}

fn no_audio(path: &Path) -> Error {
    Error::input(path, "no audio: the file holds 0 samples")
}

fn truncated(path: &Path, declared: usize, got: usize) -> Error {
    Error::input(
        path,
        format!(
            "file is truncated: the header declares {declared} samples, only {got} are present"
        ),
    )
}

fn read_f64(path: &Path, layout: wav_f64::Layout) -> Result<Audio> {
    check_spec(path, &layout.spec)?;
    if layout.declared_samples == 0 {
        return Err(no_audio(path));
    }
    if layout.present_samples < layout.declared_samples {
        return Err(truncated(
            path,
            layout.declared_samples as usize,
            layout.present_samples as usize,
        ));
    }
    let interleaved = wav_f64::read_interleaved(path, &layout)?;
    Ok(deinterleave(layout.spec, &interleaved))
}

fn deinterleave(spec: WavSpec, interleaved: &[f32]) -> Audio {
    let n_ch = spec.channels as usize;
    let frames = interleaved.len() / n_ch;
    let mut channels = vec![Vec::with_capacity(frames); n_ch];
    for frame in interleaved.chunks_exact(n_ch) {
        for (c, &s) in channels.iter_mut().zip(frame) {
            // NaN/Inf in a float file would poison whole STFT frames: treat as silence
            c.push(if s.is_finite() { s } else { 0.0 });
        }
    }
    Audio { spec, channels }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary path next to `dest`, unique within this process.
pub fn temp_path_for(dest: &Path) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = dest
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.denoised-{}-{n}.tmp", std::process::id()))
}

/// Write `channels` in `spec`'s format to `dest`, atomically (temp file + rename).
pub fn write_atomic(dest: &Path, spec: WavSpec, channels: &[Vec<f32>]) -> Result<()> {
    let tmp = temp_path_for(dest);
    let result = write_to(&tmp, spec, channels).and_then(|()| {
        std::fs::rename(&tmp, dest).map_err(|e| {
            Error::output(
                dest,
                format!("cannot move the finished file into place: {e}"),
            )
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_to(tmp: &Path, spec: WavSpec, channels: &[Vec<f32>]) -> Result<()> {
    if spec.sample_format == SampleFormat::Float && spec.bits_per_sample == 64 {
        return wav_f64::write(tmp, spec, channels);
    }
    let werr = |e: hound::Error| Error::output(tmp, format!("cannot write: {e}"));
    let file = File::create(tmp).map_err(|e| Error::output(tmp, format!("cannot create: {e}")))?;
    let mut w = WavWriter::new(BufWriter::new(file), spec).map_err(werr)?;
    let frames = channels.first().map_or(0, Vec::len);
    match spec.sample_format {
        SampleFormat::Float => {
            for i in 0..frames {
                for c in channels {
                    let s = c[i];
                    w.write_sample(if s.is_finite() { s } else { 0.0 })
                        .map_err(werr)?;
                }
            }
        }
        SampleFormat::Int => {
            let full = (1i64 << (spec.bits_per_sample - 1)) as f32;
            let (lo, hi) = (-full, full - 1.0);
            for i in 0..frames {
                for c in channels {
                    let s = c[i];
                    let v = if s.is_finite() {
                        (s * full).round().clamp(lo, hi)
                    } else {
                        0.0
                    };
                    w.write_sample(v as i32).map_err(werr)?;
                }
            }
        }
    }
    w.finalize().map_err(werr)?;
    // make the data durable before the rename publishes it
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::output(tmp, format!("cannot write: {e}")))?;
    Ok(())
}
