//! 64-bit float WAV, which `hound` neither reads nor writes (it stops at 32-bit float).
//! NumPy, SciPy and libsndfile users write such files routinely, and "any float WAV" is
//! what `denoised clean` promises, so this module reads them and writes the result back in
//! the same encoding. It handles only that one encoding: everything else stays with hound.
//!
//! A WAV file is a RIFF container: `RIFF <size> WAVE`, then chunks of `<id> <size> <data>`
//! padded to an even length. We need `fmt ` (format tag 3, IEEE float, or 0xFFFE,
//! extensible, whose sub-format GUID begins with 3) and `data`; other chunks are skipped.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use hound::{SampleFormat, WavSpec};

use crate::error::{Error, Result};

const FORMAT_IEEE_FLOAT: u16 = 3;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;
const BYTES_PER_SAMPLE: u64 = 8;

/// Where a 64-bit float file's samples are: the format, and the data chunk's place.
pub struct Layout {
    pub spec: WavSpec,
    data_offset: u64,
    /// Samples (not frames) the data chunk declares.
    pub declared_samples: u64,
    /// Samples really present in the file (fewer when it is truncated).
    pub present_samples: u64,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Parse the header. `Ok(None)` when the file is a WAV of some other encoding (or not a
/// WAV at all): the caller then reports hound's error, which describes it better.
pub fn layout(path: &Path) -> Result<Option<Layout>> {
    let io = |e: std::io::Error| Error::input(path, format!("cannot read: {e}"));
    let mut f = File::open(path).map_err(io)?;
    let file_len = f.metadata().map_err(io)?.len();
    let mut riff = [0u8; 12];
    if f.read_exact(&mut riff).is_err() || &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Ok(None);
    }
    let mut pos = 12u64;
    let mut spec = None;
    while pos + 8 <= file_len {
        f.seek(SeekFrom::Start(pos)).map_err(io)?;
        let mut head = [0u8; 8];
        f.read_exact(&mut head).map_err(io)?;
        let size = u64::from(u32_at(&head, 4));
        let body = pos + 8;
        match &head[0..4] {
            b"fmt " => {
                if !(16..=64).contains(&size) {
                    return Ok(None);
                }
                let mut fmt = vec![0u8; size as usize];
                f.read_exact(&mut fmt).map_err(io)?;
                let tag = u16_at(&fmt, 0);
                let float = tag == FORMAT_IEEE_FLOAT
                    || (tag == FORMAT_EXTENSIBLE
                        && size >= 26
                        && u16_at(&fmt, 24) == FORMAT_IEEE_FLOAT);
                if !float || u16_at(&fmt, 14) != 64 {
                    return Ok(None);
                }
                spec = Some(WavSpec {
                    channels: u16_at(&fmt, 2),
                    sample_rate: u32_at(&fmt, 4),
                    bits_per_sample: 64,
                    sample_format: SampleFormat::Float,
                });
            }
            b"data" => {
                let Some(spec) = spec else {
                    return Ok(None);
                };
                let present_bytes = file_len - body;
                return Ok(Some(Layout {
                    spec,
                    data_offset: body,
                    declared_samples: size / BYTES_PER_SAMPLE,
                    present_samples: size.min(present_bytes) / BYTES_PER_SAMPLE,
                }));
            }
            _ => {}
        }
        pos = body + size + (size & 1);
    }
    Ok(None)
}

/// Read the samples `layout` describes, interleaved, as f32 (NaN and infinities as they are:
/// the caller treats them).
pub fn read_interleaved(path: &Path, layout: &Layout) -> Result<Vec<f32>> {
    let io = |e: std::io::Error| Error::input(path, format!("cannot read: {e}"));
    let mut f = BufReader::new(File::open(path).map_err(io)?);
    f.seek(SeekFrom::Start(layout.data_offset)).map_err(io)?;
    let n = layout.present_samples as usize;
    let mut out = Vec::with_capacity(n);
    let mut b = [0u8; 8];
    for _ in 0..n {
        f.read_exact(&mut b).map_err(io)?;
        out.push(f64::from_le_bytes(b) as f32);
    }
    Ok(out)
}

/// Write `channels` as a 64-bit float WAV (format tag 3, with the `fact` chunk that
/// non-PCM WAV files carry) to `path`.
pub fn write(path: &Path, spec: WavSpec, channels: &[Vec<f32>]) -> Result<()> {
    let werr = |e: std::io::Error| Error::output(path, format!("cannot write: {e}"));
    let frames = channels.first().map_or(0, Vec::len) as u64;
    let n_ch = u64::from(spec.channels);
    let data_bytes = frames * n_ch * BYTES_PER_SAMPLE;
    // RIFF sizes are 32-bit: 4 (WAVE) + 26 (fmt) + 12 (fact) + 8 (data header) + data
    let riff_size = 4 + 26 + 12 + 8 + data_bytes;
    if riff_size > u64::from(u32::MAX) {
        return Err(Error::output(
            path,
            "the result would exceed the WAV format's 4 GiB limit",
        ));
    }
    let file =
        File::create(path).map_err(|e| Error::output(path, format!("cannot create: {e}")))?;
    let mut w = BufWriter::new(file);
    let block_align = (n_ch * BYTES_PER_SAMPLE) as u16;
    let byte_rate = u64::from(spec.sample_rate) * n_ch * BYTES_PER_SAMPLE;
    let mut head = Vec::with_capacity(58);
    head.extend_from_slice(b"RIFF");
    head.extend_from_slice(&(riff_size as u32).to_le_bytes());
    head.extend_from_slice(b"WAVEfmt ");
    head.extend_from_slice(&18u32.to_le_bytes());
    head.extend_from_slice(&FORMAT_IEEE_FLOAT.to_le_bytes());
    head.extend_from_slice(&spec.channels.to_le_bytes());
    head.extend_from_slice(&spec.sample_rate.to_le_bytes());
    head.extend_from_slice(&(byte_rate as u32).to_le_bytes());
    head.extend_from_slice(&block_align.to_le_bytes());
    head.extend_from_slice(&64u16.to_le_bytes());
    head.extend_from_slice(&0u16.to_le_bytes()); // cbSize: no extension
    head.extend_from_slice(b"fact");
    head.extend_from_slice(&4u32.to_le_bytes());
    head.extend_from_slice(&(frames as u32).to_le_bytes());
    head.extend_from_slice(b"data");
    head.extend_from_slice(&(data_bytes as u32).to_le_bytes());
    w.write_all(&head).map_err(werr)?;
    for i in 0..frames as usize {
        for c in channels {
            let s = c[i];
            let v = if s.is_finite() { f64::from(s) } else { 0.0 };
            w.write_all(&v.to_le_bytes()).map_err(werr)?;
        }
    }
    w.into_inner()
        .map_err(|e| werr(e.into_error()))?
        .sync_all()
        .map_err(werr)
}
