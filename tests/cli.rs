//! The `denoised` binary end to end: help and exit codes, `clean` on every format, folders,
//! and every kind of bad input (clear message naming the file, non-zero exit, nothing
//! partial left behind, the rest of a batch still processed).

mod common;

use std::path::Path;

use assert_cmd::Command;
use common::*;
use predicates::prelude::*;

/// A 0.1 s 16-bit mono test file (channel `seed` of the test signal).
fn short_wav(path: &Path, seed: usize) {
    write_wav(path, 48000, 16, false, &[signal(4800, 48000, seed)]);
}

fn denoised() -> Command {
    Command::cargo_bin("denoised").unwrap()
}

fn clean_with(model: &str) -> Command {
    let mut c = denoised();
    c.arg("clean")
        .arg("--model")
        .arg(fixture_model(model))
        .arg("--provider")
        .arg("cpu")
        .arg("-q");
    c
}

#[test]
fn help_lists_the_commands() {
    denoised().arg("--help").assert().success().stdout(
        predicate::str::contains("clean")
            .and(predicate::str::contains("bench"))
            .and(predicate::str::contains("model")),
    );
    denoised()
        .args(["clean", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--attenuation-limit-db <DB>"));
}

#[test]
fn usage_errors_exit_2() {
    denoised().assert().code(2);
    denoised().args(["clean"]).assert().code(2);
    denoised()
        .args(["clean", "x.wav"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--output"));
    denoised().args(["frobnicate"]).assert().code(2);
}

#[test]
fn bad_option_values_exit_78_and_name_the_option() {
    let d = tempfile::tempdir().unwrap();
    let inp = d.path().join("in.wav");
    short_wav(&inp, 0);
    clean_with("identity")
        .arg(&inp)
        .arg("-o")
        .arg(d.path().join("o.wav"))
        .arg("--attenuation-limit-db=-5")
        .assert()
        .code(78)
        .stderr(
            predicate::str::contains("attenuation-limit-db")
                .and(predicate::str::contains("0 to 100")),
        );
    clean_with("identity")
        .arg(&inp)
        .arg("-o")
        .arg(d.path().join("o.wav"))
        .args(["--wet-dry", "1.5"])
        .assert()
        .code(78)
        .stderr(predicate::str::contains("wet-dry"));
    assert!(!d.path().join("o.wav").exists());
}

fn assert_identity(rate: u32, bits: u16, float: bool, n_ch: usize, frames: usize) {
    let d = tempfile::tempdir().unwrap();
    let inp = d.path().join("in.wav");
    let out = d.path().join("out.wav");
    // above 48 kHz only the band the model domain carries (< 24 kHz) can come back
    let chans: Vec<Vec<f32>> = (0..n_ch)
        .map(|c| {
            if rate > 48000 {
                tones(frames, rate, c)
            } else {
                signal(frames, rate, c)
            }
        })
        .collect();
    write_wav(&inp, rate, bits, float, &chans);
    clean_with("identity")
        .arg(&inp)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    let a = read_wav(&inp);
    let b = read_wav(&out);
    assert_eq!(a.spec, b.spec, "format, rate and channels are kept");
    assert_eq!(a.channels[0].len(), b.channels[0].len(), "length is kept");
    if rate == 48000 {
        if float || bits == 32 {
            // f32 carries 24 bits of mantissa: 32-bit integers are compared as floats
            let err = a
                .channels
                .iter()
                .flatten()
                .zip(b.channels.iter().flatten())
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(err <= 1e-6, "float identity error {err}");
        } else {
            let lsb = a
                .ints
                .iter()
                .zip(&b.ints)
                .map(|(x, y)| (x - y).abs())
                .max()
                .unwrap();
            assert!(lsb <= 1, "{bits}-bit identity differs by {lsb} LSB");
        }
    } else {
        // resampled to 48 kHz and back: transparent in-band, edges excluded
        let margin = rate as usize / 20;
        for (x, y) in a.channels.iter().zip(&b.channels) {
            let (mut e, mut s) = (0.0f64, 0.0f64);
            for i in margin..frames - margin {
                e += ((x[i] - y[i]) as f64).powi(2);
                s += (x[i] as f64).powi(2);
            }
            let snr_db = 10.0 * (s / e.max(1e-20)).log10();
            // 30 dB: the resampler's anti-aliasing filter removes the top ~5 % of the band, where
            // the white-noise part of the test signal has about -32 dB of its power
            assert!(snr_db > 30.0, "{rate} Hz round trip SNR {snr_db:.1} dB");
        }
    }
}

#[test]
fn identity_model_returns_float_input_within_1e6() {
    assert_identity(48000, 32, true, 1, 48000);
}

#[test]
fn identity_model_returns_16bit_input_within_one_lsb() {
    assert_identity(48000, 16, false, 1, 48000);
}

/// Samples of a 64-bit float WAV, read by hand (hound cannot), with its format tag and bits.
fn read_f64_wav(path: &Path) -> (u16, u16, Vec<f64>) {
    let b = std::fs::read(path).unwrap();
    let (mut pos, mut fmt) = (12, None);
    while pos + 8 <= b.len() {
        let size = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let body = &b[pos + 8..pos + 8 + size];
        match &b[pos..pos + 4] {
            b"fmt " => {
                fmt = Some((
                    u16::from_le_bytes([body[0], body[1]]),
                    u16::from_le_bytes([body[14], body[15]]),
                ))
            }
            b"data" => {
                let (tag, bits) = fmt.expect("fmt before data");
                let v = body
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                return (tag, bits, v);
            }
            _ => {}
        }
        pos += 8 + size + (size & 1);
    }
    panic!("no data chunk in {}", path.display());
}

/// A 64-bit float WAV in the extensible layout (format tag 0xFFFE, float sub-format GUID),
/// with a LIST chunk before the data, as some editors write it.
fn extensible_f64_wav(rate: u32, interleaved: &[f64], channels: u16) -> Vec<u8> {
    let data: Vec<u8> = interleaved.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut fmt = Vec::new();
    fmt.extend_from_slice(&0xFFFEu16.to_le_bytes());
    fmt.extend_from_slice(&channels.to_le_bytes());
    fmt.extend_from_slice(&rate.to_le_bytes());
    fmt.extend_from_slice(&(rate * 8 * channels as u32).to_le_bytes());
    fmt.extend_from_slice(&(8 * channels).to_le_bytes());
    fmt.extend_from_slice(&64u16.to_le_bytes());
    fmt.extend_from_slice(&22u16.to_le_bytes());
    fmt.extend_from_slice(&64u16.to_le_bytes());
    fmt.extend_from_slice(&0u32.to_le_bytes());
    fmt.extend_from_slice(&[
        3, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71,
    ]);
    let list = b"INFOISFT\x05\0\0\0test\0\0"; // odd-sized string, padded
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(
        &((4 + 8 + fmt.len() + 8 + list.len() + 8 + data.len()) as u32).to_le_bytes(),
    );
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
    v.extend_from_slice(&fmt);
    v.extend_from_slice(b"LIST");
    v.extend_from_slice(&(list.len() as u32).to_le_bytes());
    v.extend_from_slice(list);
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(&data);
    v
}

#[test]
fn sixty_four_bit_float_wav_is_cleaned_and_written_back_as_64_bit_float() {
    let d = tempfile::tempdir().unwrap();
    let frames = 24000;
    let (l, r) = (signal(frames, 48000, 0), signal(frames, 48000, 1));
    let interleaved: Vec<f64> = l
        .iter()
        .zip(&r)
        .flat_map(|(&a, &b)| [a as f64, b as f64])
        .collect();
    let pcm: Vec<u8> = interleaved.iter().flat_map(|s| s.to_le_bytes()).collect();
    let plain = d.path().join("plain.wav");
    std::fs::write(&plain, raw_wav(3, 2, 48000, 64, pcm.len() as u32, &pcm)).unwrap();
    let ext = d.path().join("extensible.wav");
    std::fs::write(&ext, extensible_f64_wav(48000, &interleaved, 2)).unwrap();
    for inp in [&plain, &ext] {
        let out = d.path().join("out.wav");
        clean_with("identity")
            .arg(inp)
            .arg("-o")
            .arg(&out)
            .assert()
            .success();
        let (tag, bits, got) = read_f64_wav(&out);
        assert_eq!(
            (tag, bits),
            (3, 64),
            "{}: written as 64-bit float",
            inp.display()
        );
        assert_eq!(
            got.len(),
            interleaved.len(),
            "{}: length and channels kept",
            inp.display()
        );
        let err = got
            .iter()
            .zip(&interleaved)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err <= 1e-6, "{}: identity error {err}", inp.display());
    }
}

#[test]
fn quiet_clean_prints_nothing_when_all_goes_well() {
    let d = tempfile::tempdir().unwrap();
    let inp = d.path().join("in.wav");
    short_wav(&inp, 0);
    clean_with("identity")
        .arg(&inp)
        .arg("-o")
        .arg(d.path().join("o.wav"))
        .assert()
        .success()
        .stdout("")
        .stderr("");
}

#[test]
fn format_rate_channel_matrix_round_trips() {
    for (rate, bits, float, ch) in [
        (48000, 8, false, 1),
        (48000, 24, false, 2),
        (48000, 32, false, 3),
        (44100, 16, false, 2),
        (16000, 16, false, 1),
        (8000, 8, false, 1),
        (96000, 24, false, 1),
        (22050, 32, true, 2),
    ] {
        assert_identity(rate, bits, float, ch, rate as usize * 3 / 2);
    }
}

/// Cleans one second of test signal with a fixture model; returns the largest
/// |scale * input - output|.
fn max_error_vs_scaled_input(model: &str, extra: &[&str], scale: f32) -> f32 {
    let d = tempfile::tempdir().unwrap();
    let inp = d.path().join("in.wav");
    let out = d.path().join("out.wav");
    write_wav(&inp, 48000, 32, true, &[signal(48000, 48000, 0)]);
    clean_with(model)
        .arg(&inp)
        .arg("-o")
        .arg(&out)
        .args(extra)
        .assert()
        .success();
    let (a, b) = (read_wav(&inp), read_wav(&out));
    a.channels[0]
        .iter()
        .zip(&b.channels[0])
        .map(|(x, y)| (scale * x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn half_gain_model_halves_the_signal() {
    let err = max_error_vs_scaled_input("half_gain", &["--pitch-filter=false"], 0.5);
    assert!(err < 1e-5, "{err}");
}

#[test]
fn attenuation_limit_floors_a_zero_gain_model() {
    let err = max_error_vs_scaled_input(
        "zero_gain",
        &["--attenuation-limit-db", "20", "--pitch-filter=false"],
        0.1,
    );
    assert!(err < 1e-5, "20 dB limit means a gain of 0.1: {err}");
}

#[test]
fn pitch_filter_is_on_by_default_and_can_be_switched_off() {
    // where the model cuts (gain 0.5) the filter adds the signal one period back, so the
    // output is no longer exactly half the input; switched off, it is
    let on = max_error_vs_scaled_input("half_gain", &[], 0.5);
    assert!(on > 1e-3, "the default output is pitch-filtered: {on}");
    let off = max_error_vs_scaled_input("half_gain", &["--pitch-filter=false"], 0.5);
    assert!(off < 1e-5, "{off}");
    let d = tempfile::tempdir().unwrap();
    let inp = d.path().join("in.wav");
    short_wav(&inp, 0);
    clean_with("half_gain")
        .arg(&inp)
        .arg("-o")
        .arg(d.path().join("out.wav"))
        .arg("--pitch-filter=maybe")
        .assert()
        .failure()
        .stderr(predicates::str::contains("pitch-filter"));
}

#[test]
fn folder_input_mirrors_structure_and_uses_several_jobs() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    for (i, rel) in ["one.wav", "a/two.wav", "a/b/three.WAV"].iter().enumerate() {
        write_wav(
            &src.join(rel),
            16000 + 8000 * i as u32,
            16,
            false,
            &[signal(8000, 16000, i)],
        );
    }
    std::fs::write(src.join("a/notes.txt"), "not audio").unwrap();
    let out = d.path().join("out");
    clean_with("identity")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--jobs", "2"])
        .assert()
        .success();
    let got: Vec<_> = files_in(&out)
        .iter()
        .map(|p| p.strip_prefix(&out).unwrap().to_path_buf())
        .collect();
    assert_eq!(
        got,
        vec![
            Path::new("a/b/three.WAV"),
            Path::new("a/two.wav"),
            Path::new("one.wav")
        ]
    );
}

#[test]
fn rerun_into_an_output_folder_inside_the_input_folder_does_not_clean_the_results_again() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("rec");
    std::fs::create_dir_all(src.join("day1")).unwrap();
    short_wav(&src.join("a.wav"), 0);
    short_wav(&src.join("day1/b.wav"), 1);
    let out = src.join("clean");
    for _ in 0..2 {
        // the second run replaces the first run's results instead of taking them as inputs
        clean_with("identity")
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .assert()
            .success();
    }
    assert_eq!(
        files_in(&out),
        vec![out.join("a.wav"), out.join("day1/b.wav")],
        "the results, once, and no nested copies"
    );
}

#[test]
fn a_symlink_to_a_parent_folder_does_not_make_the_walk_go_round() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("rec");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    short_wav(&src.join("a.wav"), 0);
    std::os::unix::fs::symlink("..", src.join("sub/loop")).unwrap();
    let out = d.path().join("out");
    clean_with("identity")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    assert_eq!(files_in(&out), vec![out.join("a.wav")], "each file once");
}

#[test]
fn several_files_go_into_the_output_folder() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.wav"), d.path().join("b.wav"));
    short_wav(&a, 0);
    short_wav(&b, 1);
    let out = d.path().join("out");
    clean_with("identity")
        .arg(&a)
        .arg(&b)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    assert!(out.join("a.wav").is_file() && out.join("b.wav").is_file());
}

/// Every malformed input: named in the error, exit 1, no output (not even a temp file),
/// and the good file of the same batch is still cleaned.
#[test]
fn bad_inputs_are_reported_and_the_rest_of_the_batch_is_processed() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let pcm: Vec<u8> = (0..4800u32)
        .flat_map(|i| ((i % 200) as i16 * 50).to_le_bytes())
        .collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not_a_wav.wav",
            b"hello, this is not audio at all, just some text".to_vec(),
            "not",
        ),
        (
            "truncated_header.wav",
            raw_wav(1, 1, 48000, 16, 9600, &pcm)[..20].to_vec(),
            "not",
        ),
        (
            "short_data.wav",
            raw_wav(1, 1, 48000, 16, 96000, &pcm),
            "truncated",
        ),
        ("empty.wav", raw_wav(1, 1, 48000, 16, 0, &[]), "0 samples"),
        (
            "twelve_bit.wav",
            raw_wav(1, 1, 48000, 12, 9600, &pcm),
            "unsupported",
        ),
        (
            "alaw.wav",
            raw_wav(6, 1, 8000, 8, 4800, &pcm[..4800]),
            "unsupported",
        ),
        (
            "zero_channels.wav",
            raw_wav(1, 0, 48000, 16, 9600, &pcm),
            "channel",
        ),
        ("absurd_rate.wav", raw_wav(1, 1, 7, 16, 9600, &pcm), "rate"),
        (
            "short_data_f64.wav",
            raw_wav(3, 1, 48000, 64, 96000, &pcm),
            "truncated",
        ),
        (
            "zero_channels_f64.wav",
            raw_wav(3, 0, 48000, 64, 9600, &pcm),
            "channel",
        ),
        (
            // hound reports this header as "Failed to read enough bytes", not as EOF
            "riff_without_chunks.wav",
            [b"RIFF\0\0\0\0WAVEjunk".as_slice(), &[0u8; 100]].concat(),
            "not a wav",
        ),
    ];
    for (name, bytes, _) in &cases {
        std::fs::write(src.join(name), bytes).unwrap();
    }
    write_wav(
        &src.join("good.wav"),
        48000,
        16,
        false,
        &[signal(9600, 48000, 0)],
    );
    let out = d.path().join("out");
    let assert = clean_with("identity")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_lowercase();
    assert!(
        stderr.contains(&format!(
            "{} of {} files failed",
            cases.len(),
            cases.len() + 1
        )),
        "{stderr}"
    );
    for (name, _, why) in &cases {
        let line = stderr
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} not named in:\n{stderr}"));
        assert!(line.contains(why), "{name}: expected '{why}' in: {line}");
    }
    assert_eq!(
        files_in(&out),
        vec![out.join("good.wav")],
        "only the good file, no partial or temp files"
    );
}

#[test]
fn a_dash_for_a_pipe_is_refused_with_a_plain_message() {
    let d = tempfile::tempdir().unwrap();
    let inp = d.path().join("in.wav");
    short_wav(&inp, 0);
    clean_with("identity")
        .current_dir(d.path())
        .args(["-", "-o", "o.wav"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("standard input is not supported"));
    clean_with("identity")
        .current_dir(d.path())
        .arg(&inp)
        .args(["-o", "-"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("standard output is not supported"));
    assert!(
        !d.path().join("-").exists(),
        "no file named '-' was written"
    );
}

#[test]
fn unreadable_input_path_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    clean_with("identity")
        .arg(d.path().join("missing.wav"))
        .arg("-o")
        .arg(d.path().join("o.wav"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("missing.wav"));
    assert!(!d.path().join("o.wav").exists());
}

#[test]
fn output_folder_not_writable_is_an_error_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let inp = d.path().join("in.wav");
    short_wav(&inp, 0);
    // a regular file where a folder is needed: not writable for anyone, root included
    let blocker = d.path().join("blocker");
    std::fs::write(&blocker, "x").unwrap();
    clean_with("identity")
        .arg(&inp)
        .arg("-o")
        .arg(blocker.join("sub/out.wav"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("blocker"));
    assert_eq!(files_in(d.path()).len(), 2);
}

#[test]
fn refuses_to_overwrite_the_input() {
    let d = tempfile::tempdir().unwrap();
    let inp = d.path().join("in.wav");
    short_wav(&inp, 0);
    let before = std::fs::read(&inp).unwrap();
    clean_with("identity")
        .arg(&inp)
        .arg("-o")
        .arg(d.path().join("./in.wav"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("overwrite"));
    assert_eq!(std::fs::read(&inp).unwrap(), before);
    assert_eq!(files_in(d.path()), vec![inp]);
}

#[test]
fn bad_models_give_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let inp = d.path().join("in.wav");
    short_wav(&inp, 0);
    for (model, needle) in [
        ("corrupt", "not a loadable onnx model"),
        ("bad_rate", "sample_rate_hz"),
        ("no_contract", "denoised.contract"),
        ("bad_bins", "expected float32 [1, t, 481, 2]"),
        ("bad_lookahead", "`lookahead_frames` = 9: at most 4 frames"),
        ("no_state_out", "state_out_h"),
        (
            "bad_df",
            "`df_coefs`: expected float32 [1, t, bins <= 481, order <= 32, 2]",
        ),
        ("does_not_exist", "no such file"),
    ] {
        let a = clean_with(model)
            .arg(&inp)
            .arg("-o")
            .arg(d.path().join("o.wav"))
            .assert()
            .code(1);
        let err = String::from_utf8_lossy(&a.get_output().stderr).to_lowercase();
        assert!(
            err.contains(&format!("{model}.onnx")) && err.contains(needle),
            "{model}: {err}"
        );
        assert!(!d.path().join("o.wav").exists());
    }
}

#[test]
fn missing_onnx_runtime_says_how_to_fix_it() {
    let d = tempfile::tempdir().unwrap();
    let inp = d.path().join("in.wav");
    short_wav(&inp, 0);
    clean_with("identity")
        .env("ORT_DYLIB_PATH", d.path().join("nope/libonnxruntime.so"))
        .arg(&inp)
        .arg("-o")
        .arg(d.path().join("o.wav"))
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("ONNX Runtime library not found")
                .and(predicate::str::contains("scripts/setup")),
        );
}

#[test]
fn cuda_provider_fails_clearly_without_cuda() {
    // The CPU build of ONNX Runtime (what CI installs) has no CUDA provider.
    let d = tempfile::tempdir().unwrap();
    let inp = d.path().join("in.wav");
    short_wav(&inp, 0);
    let mut c = denoised();
    c.args(["clean", "-q", "--provider", "cuda", "--model"])
        .arg(fixture_model("identity"))
        .arg(&inp)
        .arg("-o")
        .arg(d.path().join("o.wav"));
    if Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".ort/gpu")
        .exists()
    {
        return; // a GPU runtime is installed here; the CPU-only expectation does not apply
    }
    c.assert().code(1).stderr(predicate::str::contains(
        "CUDA execution provider unavailable",
    ));
}

#[test]
fn auto_provider_falls_back_to_cpu_and_says_so() {
    let d = tempfile::tempdir().unwrap();
    let inp = d.path().join("in.wav");
    short_wav(&inp, 0);
    let mut c = denoised();
    c.args(["clean", "--provider", "auto", "--model"])
        .arg(fixture_model("identity"))
        .arg(&inp)
        .arg("-o")
        .arg(d.path().join("o.wav"));
    c.assert()
        .success()
        .stderr(predicate::str::contains("execution provider: "));
}

#[test]
fn model_info_prints_contract_and_parameters() {
    denoised()
        .args(["model", "info"])
        .arg(fixture_model("tiny_gru"))
        .assert()
        .success()
        .stdout(
            predicate::str::contains("parameters  4298")
                .and(predicate::str::contains("state_in_gru: Float32 [1, 1, 8]"))
                .and(predicate::str::contains("sha256"))
                .and(predicate::str::contains("sample_rate_hz = 48000"))
                .and(predicate::str::contains("deep filter none")),
        );
    denoised()
        .args(["model", "info"])
        .arg(fixture_model("df_delay"))
        .assert()
        .success()
        .stdout(predicate::str::contains("deep filter 5 taps on bins 0..96"));
}

/// `denoised bench` on the CPU with a fixture model, briefly; more arguments may follow.
fn bench_cmd(model: &str, seconds: &str, hops: &str) -> Command {
    let mut cmd = denoised();
    cmd.args([
        "bench",
        "--provider",
        "cpu",
        "--seconds",
        seconds,
        "--hops",
        hops,
        "--model",
    ])
    .arg(fixture_model(model));
    cmd
}

fn bench_fixture(model: &str, seconds: &str, hops: &str) -> assert_cmd::assert::Assert {
    bench_cmd(model, seconds, hops).assert()
}

#[test]
fn bench_prints_real_time_factor_and_percentiles() {
    bench_fixture("tiny_gru", "2", "50").success().stdout(
        predicate::str::contains("real-time factor")
            .and(predicate::str::contains("p99"))
            .and(predicate::str::contains("latency   20 ms algorithmic")),
    );
}

#[test]
fn bench_reports_the_latency_a_lookahead_model_adds() {
    bench_fixture("tiny_gru_la2", "1", "20")
        .success()
        .stdout(predicate::str::contains(
            "latency   40 ms algorithmic: 30 ms stream (STFT, 2 frames of model lookahead)",
        ));
}

#[test]
fn bench_against_a_second_model_prints_the_paired_ratio() {
    let out = bench_cmd("tiny_gru", "1", "40")
        .args(["--turn-hops", "4"])
        .arg("--against")
        .arg(fixture_model("tiny_gru"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("turns of 4 hops, 40 model calls each"),
        "{text}"
    );
    let ratio: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("paired    B/A model p50 "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no paired ratio in:\n{text}"));
    // a time ratio: positive and finite (its value is the machine's, not asserted)
    assert!(ratio.is_finite() && ratio > 0.0, "{ratio}");
}

#[test]
fn bench_turn_hops_need_a_second_model_and_both_must_be_valid() {
    bench_cmd("tiny_gru", "1", "10")
        .args(["--turn-hops", "0", "--against", "x.onnx"])
        .assert()
        .code(78)
        .stderr(predicate::str::contains("turn-hops"));
    // turns mean nothing without a second model
    bench_cmd("tiny_gru", "1", "10")
        .args(["--turn-hops", "3"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--against"));
    bench_cmd("tiny_gru", "1", "10")
        .args(["--against", "no/such/model.onnx"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no/such/model.onnx"));
}

#[test]
fn bad_config_file_exits_78_naming_the_key() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("c.toml");
    std::fs::write(&cfg, "[denoise]\nattenuaton_limit_db = 20\n").unwrap();
    denoised()
        .args(["run", "--config"])
        .arg(&cfg)
        .assert()
        .code(78)
        .stderr(predicate::str::contains("attenuaton_limit_db"));
    std::fs::write(&cfg, "[audio]\nlatency_ms = -3\n").unwrap();
    denoised()
        .args(["run", "--config"])
        .arg(&cfg)
        .assert()
        .code(78)
        .stderr(predicate::str::contains("latency-ms"));
    denoised()
        .args(["run", "--config"])
        .arg(d.path().join("missing.toml"))
        .assert()
        .code(78);
}

#[test]
fn client_commands_say_when_no_daemon_runs() {
    let d = tempfile::tempdir().unwrap();
    denoised()
        .env("XDG_RUNTIME_DIR", d.path())
        .arg("status")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no denoised answers"));
}
