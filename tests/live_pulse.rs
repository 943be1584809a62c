//! End to end through a real sound server: a user-space PulseAudio with null sinks (started
//! by scripts/pulse-test-server, which scripts/test runs; these tests skip unless
//! DENOISED_PULSE_TESTS=1). A noisy speech file is played into the `test_in` sink, whose
//! monitor is `denoised run`'s input; `denoised run` plays into `test_out`, whose monitor
//! is recorded. The recording is aligned by cross-correlation (null sinks add a variable
//! 0.2-1.3 s) and must be complete (equal to the offline `clean` result) and denoised.
//! `test_in.monitor` is recorded too, as a witness: an attempt in which the server itself
//! did not play the file as written (a gap after a stalled player, or an altered copy) is
//! void and repeated.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use realfft::RealFftPlanner;
use realfft::num_complex::Complex32;

/// The tests share one sound server: run them one at a time.
static SERVER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn enabled() -> bool {
    if std::env::var_os("DENOISED_PULSE_TESTS").is_none() {
        eprintln!(
            "DENOISED_PULSE_TESTS not set (scripts/test sets it after starting PulseAudio); skipped"
        );
        return false;
    }
    true
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("denoised")
}

fn pactl(args: &[&str]) -> String {
    let o = Command::new("pactl").args(args).output().expect("pactl");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Lag of `b` relative to `a` (b[i + lag] ~ a[i]) by FFT cross-correlation.
fn lag_of(a: &[f32], b: &[f32]) -> usize {
    let n = (a.len() + b.len()).next_power_of_two();
    let mut p = RealFftPlanner::<f32>::new();
    let (f, i) = (p.plan_fft_forward(n), p.plan_fft_inverse(n));
    let (mut xa, mut xb) = (vec![0.0; n], vec![0.0; n]);
    xa[..a.len()].copy_from_slice(a);
    xb[..b.len()].copy_from_slice(b);
    let (mut sa, mut sb) = (f.make_output_vec(), f.make_output_vec());
    f.process(&mut xa, &mut sa).unwrap();
    f.process(&mut xb, &mut sb).unwrap();
    let mut prod: Vec<Complex32> = sa.iter().zip(&sb).map(|(x, y)| x.conj() * y).collect();
    let last = prod.len() - 1;
    prod[0].im = 0.0;
    prod[last].im = 0.0;
    let mut r = vec![0.0; n];
    i.process(&mut prod, &mut r).unwrap();
    r[..b.len()]
        .iter()
        .enumerate()
        .max_by(|x, y| x.1.total_cmp(y.1))
        .unwrap()
        .0
}

fn si_sdr_db(est: &[f32], r: &[f32]) -> f64 {
    let n = est.len().min(r.len());
    let dot: f64 = (0..n).map(|i| est[i] as f64 * r[i] as f64).sum();
    let rr: f64 = (0..n).map(|i| (r[i] as f64).powi(2)).sum();
    let a = dot / rr;
    let (mut t2, mut e2) = (0.0, 0.0);
    for i in 0..n {
        let t = a * r[i] as f64;
        t2 += t * t;
        e2 += (est[i] as f64 - t).powi(2);
    }
    10.0 * (t2 / e2).log10()
}

fn spawn_run(extra: &[&str], secs: f64) -> Child {
    Command::new(bin())
        .args([
            "run",
            "-v",
            "--provider",
            "cpu",
            "--buffer-frames",
            "2400",
            "--latency-ms",
            "200",
        ])
        .args(["--duration-s", &secs.to_string()])
        .args(extra)
        .env("PULSE_SOURCE", "test_in.monitor")
        .env("PULSE_SINK", "test_out")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn denoised run")
}

#[test]
fn live_run_through_pulseaudio_is_complete_and_denoised() {
    if !enabled() {
        return;
    }
    let _one_at_a_time = SERVER.lock().unwrap_or_else(|p| p.into_inner());
    let d = tempfile::tempdir().unwrap();
    // held-out clean speech in white noise at 5 dB SNR (a noise the model clearly removes,
    // so "denoised" is unambiguous), with 1 s of silence before and 1.5 s after (null sinks
    // are slow to start and to flush)
    let clean = read_wav(&root().join("tests/fixtures/golden/clean_speech.wav"))
        .channels
        .remove(0);
    let p_clean = clean.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / clean.len() as f64;
    let amp = (3.0 * p_clean * 10f64.powf(-5.0 / 10.0)).sqrt() as f32; // uniform noise power = amp^2 / 3
    let noisy: Vec<f32> = clean
        .iter()
        .zip(noise(clean.len(), amp, 11))
        .map(|(c, n)| c + n)
        .collect();
    let mut padded = vec![0.0f32; 48000];
    padded.extend_from_slice(&noisy);
    padded.extend(std::iter::repeat_n(0.0, 72000));
    let play_path = d.path().join("play.wav");
    write_wav(&play_path, 48000, 32, true, &[padded.clone()]);

    // offline result of the same file, the reference for completeness
    let off_path = d.path().join("offline.wav");
    let st = Command::new(bin())
        .args(["clean", "-q", "--provider", "cpu"])
        .arg(&play_path)
        .arg("-o")
        .arg(&off_path)
        .status()
        .unwrap();
    assert!(st.success());
    let offline = read_wav(&off_path).channels.remove(0);
    let speech = 48000..48000 + noisy.len();

    // The test's own player can stall (paplay stopped for 4 s with `kill -STOP` leaves a gap
    // in `test_in`), and after a stall the server can hand a monitor an altered copy: then
    // the input denoised hears is not the file, and no output could equal the offline
    // result. A second recording of `test_in.monitor` is the witness: an attempt whose input
    // was not the file is void and runs again (at most three); an attempt with the file as
    // its input must give a complete, denoised output.
    let secs = padded.len() as f64 / 48000.0 + 4.0;
    let mut attempt = 0;
    let aligned = loop {
        attempt += 1;
        let rec_path = d.path().join(format!("rec{attempt}.wav"));
        let witness_path = d.path().join(format!("witness{attempt}.wav"));
        let run = spawn_run(&[], secs);
        std::thread::sleep(Duration::from_millis(1500));
        let rec = Recorder::start("test_out.monitor", &rec_path);
        let witness = Recorder::start("test_in.monitor", &witness_path);
        std::thread::sleep(Duration::from_millis(300));
        play_into("test_in", &play_path);
        std::thread::sleep(Duration::from_millis(2000));
        rec.stop();
        witness.stop();
        let out = run.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        eprintln!("attempt {attempt}:\n{log}");
        assert!(out.status.success(), "denoised run failed:\n{log}");
        assert!(log.contains("latency budget"));

        let heard = read_wav(&witness_path).channels.remove(0);
        let in_lag = lag_of(&padded, &heard);
        let heard_n = padded.len().min(heard.len().saturating_sub(in_lag));
        let input_db = if heard_n >= speech.end {
            si_sdr_db(&heard[in_lag + speech.start..in_lag + speech.end], &noisy)
        } else {
            f64::NEG_INFINITY
        };
        if input_db < 30.0 {
            eprintln!(
                "attempt {attempt}: the input the server played was not the file ({input_db:.1} dB against the file, \
                 at lag {in_lag} of {} samples recorded): void",
                heard.len()
            );
            assert!(
                attempt < 3,
                "the sound server did not play the file as written in 3 attempts in a row"
            );
            continue;
        }
        eprintln!(
            "attempt {attempt}: the input as the server played it: {input_db:.1} dB against the file"
        );
        let recorded = read_wav(&rec_path).channels.remove(0);
        let lag = lag_of(&offline, &recorded);
        let n = offline.len().min(recorded.len().saturating_sub(lag));
        assert!(
            n >= offline.len() - 4800,
            "recording too short: {} samples after lag {lag}",
            n
        );
        eprintln!("attempt {attempt}: output lag {lag} samples");
        break recorded[lag..lag + n].to_vec();
    };
    let vs_offline = si_sdr_db(&aligned[speech.clone()], &offline[speech.clone()]);
    let live_gain = si_sdr_db(&aligned[speech.clone()], &clean) - si_sdr_db(&noisy, &clean);
    eprintln!(
        "live vs offline SI-SDR {vs_offline:.1} dB; live SI-SDR gain over noisy {live_gain:.2} dB"
    );
    // complete: no gap or glitch (any dropout would pull this far down)
    assert!(
        vs_offline > 15.0,
        "live output differs from offline: {vs_offline:.1} dB (denoised's log above)"
    );
    // denoised
    // denoised: offline, this input gains about 8 dB
    assert!(
        live_gain > 4.0,
        "live output not denoised enough: {live_gain:.2} dB"
    );
}

#[test]
fn virtual_mic_is_created_and_removed_including_stale_ones() {
    if !enabled() {
        return;
    }
    let _one_at_a_time = SERVER.lock().unwrap_or_else(|p| p.into_inner());
    // a stale sink as a crashed run would leave it
    pactl(&[
        "load-module",
        "module-null-sink",
        "sink_name=denoised_mic_sink",
    ]);
    let mut run = spawn_run(&["--virtual-mic"], 30.0);
    let mut seen = false;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        if pactl(&["list", "short", "sources"])
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("denoised_mic"))
        {
            seen = true;
            break;
        }
    }
    let props = pactl(&["list", "sources"]);
    let _ = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status();
    let st = run.wait().unwrap();
    assert!(seen, "the Denoised microphone source never appeared");
    assert!(
        props.contains("Denoised microphone"),
        "source description missing"
    );
    assert!(st.success(), "SIGTERM should stop cleanly with status 0");
    let modules = pactl(&["list", "short", "modules"]);
    assert!(
        !modules.contains("denoised_mic"),
        "modules left behind:\n{modules}"
    );
}

/// `denoised devices` lists the sound server's devices with the defaults marked, and
/// enumeration does not spill the ALSA plugins' probing messages (alsa-lib's, libjack's
/// "jack server is not running") onto stderr.
#[test]
fn devices_lists_the_server_and_keeps_probing_noise_off_stderr() {
    if !enabled() {
        return;
    }
    let _one = SERVER.lock().unwrap_or_else(|p| p.into_inner());
    let out = Command::new(bin()).arg("devices").output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.lines().any(|l| l.starts_with("* input"))
            && stdout.lines().any(|l| l.starts_with("* output")),
        "default devices not marked:\n{stdout}"
    );
    assert!(stdout.contains("PulseAudio"), "{stdout}");
    assert!(
        !stderr.to_lowercase().contains("jack") && !stderr.contains("ALSA lib"),
        "probing messages on stderr:\n{stderr}"
    );
}
