//! Helpers shared by the integration tests: fixture paths, WAV writers (valid and broken).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn fixture_model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(format!("{name}.onnx"))
}

/// Deterministic pseudo-random samples in [-amp, amp].
pub fn noise(n: usize, amp: f32, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0) * amp
        })
        .collect()
}

/// A test signal: two tones plus noise, per channel slightly different.
pub fn signal(frames: usize, rate: u32, channel: usize) -> Vec<f32> {
    let n = noise(frames, 0.05, 7 + channel as u64);
    (0..frames)
        .map(|i| {
            let t = i as f32 / rate as f32;
            0.3 * (2.0 * std::f32::consts::PI * (220.0 + 110.0 * channel as f32) * t).sin()
                + 0.2 * (2.0 * std::f32::consts::PI * 1234.0 * t).sin()
                + n[i]
        })
        .collect()
}

/// The two tones of `signal` without its noise (for rates above 48 kHz, whose band above
/// 24 kHz the 48 kHz model domain cannot carry).
pub fn tones(frames: usize, rate: u32, channel: usize) -> Vec<f32> {
    (0..frames)
        .map(|i| {
            let t = i as f32 / rate as f32;
            0.3 * (2.0 * std::f32::consts::PI * (220.0 + 110.0 * channel as f32) * t).sin()
                + 0.2 * (2.0 * std::f32::consts::PI * 1234.0 * t).sin()
        })
        .collect()
}

/// Write `channels` as a WAV of the given format (int bits or 32-bit float).
pub fn write_wav(path: &Path, rate: u32, bits: u16, float: bool, channels: &[Vec<f32>]) {
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let frames = channels[0].len();
    for i in 0..frames {
        for c in channels {
            if float {
                w.write_sample(c[i]).unwrap();
            } else {
                let full = (1i64 << (bits - 1)) as f32;
                w.write_sample(((c[i] * full).round().clamp(-full, full - 1.0)) as i32)
                    .unwrap();
            }
        }
    }
    w.finalize().unwrap();
}

pub struct Read {
    pub spec: hound::WavSpec,
    pub channels: Vec<Vec<f32>>,
    /// the raw integer samples (for LSB comparisons), interleaved
    pub ints: Vec<i32>,
}

pub fn read_wav(path: &Path) -> Read {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let n = spec.channels as usize;
    let (flat, ints): (Vec<f32>, Vec<i32>) = match spec.sample_format {
        hound::SampleFormat::Float => (r.samples::<f32>().map(|s| s.unwrap()).collect(), vec![]),
        hound::SampleFormat::Int => {
            let ints: Vec<i32> = r.samples::<i32>().map(|s| s.unwrap()).collect();
            let full = (1i64 << (spec.bits_per_sample - 1)) as f32;
            (ints.iter().map(|&v| v as f32 / full).collect(), ints)
        }
    };
    let mut channels = vec![Vec::new(); n];
    for f in flat.chunks(n) {
        for (c, &s) in channels.iter_mut().zip(f) {
            c.push(s);
        }
    }
    Read {
        spec,
        channels,
        ints,
    }
}

/// A hand-made WAV: any format tag, channel count, rate and bit depth, with `declared`
/// data bytes in the header and `data` actually present.
pub fn raw_wav(
    format_tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    declared: u32,
    data: &[u8],
) -> Vec<u8> {
    let block_align = channels.max(1) * bits.div_ceil(8);
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + declared).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&format_tag.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * block_align as u32).to_le_bytes());
    v.extend_from_slice(&block_align.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&declared.to_le_bytes());
    v.extend_from_slice(data);
    v
}

/// Files in a folder tree (to check that nothing partial was left behind).
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_in(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Records a PulseAudio source (48 kHz mono 32-bit float WAV) until `stop`.
pub struct Recorder(std::process::Child);

impl Recorder {
    pub fn start(source: &str, path: &Path) -> Self {
        let child = std::process::Command::new("parecord")
            .arg(format!("--device={source}"))
            .args([
                "--rate=48000",
                "--channels=1",
                "--format=float32le",
                "--file-format=wav",
            ])
            .arg(path)
            .spawn()
            .expect("parecord (pulseaudio-utils)");
        Recorder(child)
    }

    /// Stop like Ctrl-C, so parecord finishes the WAV header.
    pub fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Play a WAV file into a PulseAudio sink, to the end.
pub fn play_into(sink: &str, path: &Path) {
    let ok = std::process::Command::new("paplay")
        .arg(format!("--device={sink}"))
        .arg(path)
        .status()
        .expect("paplay");
    assert!(ok.success(), "paplay into {sink} failed");
}

/// The live tests' signal: the held-out clean speech fixture (its first `max_samples`, if
/// given) and the same in uniform white noise at 5 dB SNR, a noise the model clearly
/// removes. Returns (clean, noisy, the clean speech's mean power).
pub fn speech_in_noise(max_samples: Option<usize>, seed: u64) -> (Vec<f32>, Vec<f32>, f64) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden/clean_speech.wav");
    let mut clean = read_wav(&path).channels.remove(0);
    clean.truncate(max_samples.unwrap_or(clean.len()));
    let power = clean.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / clean.len() as f64;
    let amp = (3.0 * power * 10f64.powf(-5.0 / 10.0)).sqrt() as f32; // uniform: power amp^2 / 3
    let noisy = clean
        .iter()
        .zip(noise(clean.len(), amp, seed))
        .map(|(c, n)| c + n)
        .collect();
    (clean, noisy, power)
}

/// `denoised run` as the live tests start it: CPU, verbose, large device buffers and a
/// 200 ms output margin (a loaded CI machine must not under-run), reading the test server's
/// `test_in.monitor`. The caller adds the output, duration and where stderr goes.
pub fn live_run_command() -> std::process::Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("denoised"));
    c.args([
        "run",
        "-v",
        "--provider",
        "cpu",
        "--buffer-frames",
        "2400",
        "--latency-ms",
        "200",
    ])
    .env("PULSE_SOURCE", "test_in.monitor");
    c
}
