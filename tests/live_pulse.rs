//! End to end through a real sound server: a user-space PulseAudio with null sinks (started
//! by scripts/pulse-test-server, which scripts/test runs; these tests skip unless
//! DENOISED_PULSE_TESTS=1). A noisy speech file is played into the `test_in` sink, whose
//! monitor is `denoised run`'s input; `denoised run` plays into `test_out`, whose monitor
//! is recorded. The recording is aligned by cross-correlation (null sinks add a variable
//! 0.2-1.3 s, and a recorder that connects late starts after the audio it records: the lag
//! can have either sign) and must be complete (equal to the offline `clean` result) and
//! denoised. `test_in.monitor` is recorded too, as a witness of the server's input side, and
//! denoised's tap (`run --tap`) records what its worker heard and made: denoised's own path
//! is checked exactly, and an attempt in which the test's player or the server did not
//! carry the audio as written is void and repeated.

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

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("denoised")
}

fn pactl(args: &[&str]) -> String {
    let o = Command::new("pactl").args(args).output().expect("pactl");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Lag of `b` relative to `a` (b[i + lag] ~ a[i]) by FFT cross-correlation, either sign:
/// negative when `b` started after `a` (a recorder that connected late misses the start).
fn lag_of(a: &[f32], b: &[f32]) -> isize {
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
    // r[k] holds lag k for k < b.len(), and lag k - n (negative) for k > n - a.len()
    let lags = (0..b.len() as isize).chain(1 - a.len() as isize..0);
    lags.max_by(|&x, &y| {
        r[x.rem_euclid(n as isize) as usize].total_cmp(&r[y.rem_euclid(n as isize) as usize])
    })
    .unwrap()
}

/// `b` aligned to `a` by `lag` (b[i + lag] ~ a[i]), over `range` of `a`: None where `b`
/// does not cover all of it.
fn aligned(b: &[f32], lag: isize, range: std::ops::Range<usize>) -> Option<&[f32]> {
    let start = usize::try_from(range.start as isize + lag).ok()?;
    b.get(start..start + range.len())
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

/// How far `heard` is from a copy of `sent` (the same length): the error of the worst 10 ms
/// block, after one least-squares gain over all, relative to `sent`'s mean power per block,
/// in dB (-inf for an exact copy). One lost or altered hop anywhere shows as about 0 dB,
/// where an SI-SDR over the whole would still read 30 dB.
fn worst_block_db(heard: &[f32], sent: &[f32]) -> f64 {
    let dot: f64 = heard
        .iter()
        .zip(sent)
        .map(|(&h, &s)| h as f64 * s as f64)
        .sum();
    let power: f64 = sent.iter().map(|&s| (s as f64).powi(2)).sum();
    let gain = dot / power;
    let worst = heard
        .chunks(BLOCK)
        .zip(sent.chunks(BLOCK))
        .map(|(h, s)| {
            h.iter()
                .zip(s)
                .map(|(&h, &s)| (h as f64 - gain * s as f64).powi(2))
                .sum::<f64>()
        })
        .fold(0.0, f64::max);
    10.0 * (worst / (power / sent.len().div_ceil(BLOCK) as f64)).log10()
}

/// 10 ms
const BLOCK: usize = 480;
/// A copy "as written": no 10 ms block off by more than this (the server's float path and
/// denoised's streaming against offline measure far below it; one lost hop is about 0 dB).
const AS_WRITTEN_DB: f64 = -50.0;

/// `worst_block_db` of `heard` against `range` of `sent`, aligned by cross-correlation, and
/// the lag found; +inf where `heard` does not cover the range.
fn match_at(sent: &[f32], heard: &[f32], range: std::ops::Range<usize>) -> (f64, isize) {
    let lag = lag_of(sent, heard);
    let db = aligned(heard, lag, range.clone())
        .map_or(f64::INFINITY, |h| worst_block_db(h, &sent[range]));
    (db, lag)
}

/// `worst_block_db` of `b` against `a` where both exist, `b` aligned by `lag`
/// (b[i + lag] ~ a[i]), and the number of samples compared.
fn overlap_db(a: &[f32], b: &[f32], lag: isize) -> (f64, usize) {
    let from = (-lag).max(0) as usize;
    let to = (a.len() as isize)
        .min(b.len() as isize - lag)
        .max(from as isize) as usize;
    match aligned(b, lag, from..to) {
        Some(bb) if to > from => (worst_block_db(bb, &a[from..to]), to - from),
        _ => (f64::INFINITY, 0),
    }
}

/// A counter from denoised's last status line ("stopped after ...: ... underruns N ...").
fn final_count(log: &str, name: &str) -> u64 {
    let line = log
        .lines()
        .rfind(|l| l.contains("stopped after"))
        .expect("denoised logs its counters when it stops");
    let after = &line[line.find(&format!("| {name} ")).expect(name) + name.len() + 3..];
    after
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a count")
}

/// `denoised clean` of a mono file, as samples.
fn clean_offline(input: &Path, output: &Path) -> Vec<f32> {
    let st = Command::new(bin())
        .args(["clean", "-q", "--provider", "cpu"])
        .arg(input)
        .arg("-o")
        .arg(output)
        .status()
        .unwrap();
    assert!(st.success(), "denoised clean {}", input.display());
    read_wav(output).channels.remove(0)
}

fn spawn_run(extra: &[&str], secs: f64) -> Child {
    live_run_command()
        .args(["--duration-s", &secs.to_string()])
        .args(extra)
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
    // held-out speech in white noise at 5 dB SNR, with 1 s of silence before and 1.5 s
    // after (null sinks are slow to start and to flush)
    let (clean, noisy, _) = speech_in_noise(None, 11);
    let mut padded = vec![0.0f32; 48000];
    padded.extend_from_slice(&noisy);
    padded.extend(std::iter::repeat_n(0.0, 72000));
    let play_path = d.path().join("play.wav");
    write_wav(&play_path, 48000, 32, true, &[padded.clone()]);

    // offline result of the same file, the reference for completeness
    let offline = clean_offline(&play_path, &d.path().join("offline.wav"));
    let speech = 48000..48000 + noisy.len();

    // Three parties touch the audio: the test's player and recorders, the sound server, and
    // denoised. The test must fail for denoised's faults only. denoised's tap (`run --tap`)
    // records what its worker took in and gave out, and `test_in.monitor` is recorded as a
    // witness of what the server played. So each attempt is read in four places:
    // 1. the witness against the file: the player and the server's input side (paplay
    //    stopped for 4 s with `kill -STOP` leaves a gap in `test_in`). Not the file: void.
    // 2. the tap's output against the offline `clean` of the tap's input: denoised's own
    //    path, which must be exact whatever the server did. Never void.
    // 3. the tap's input against the file: denoised's capture. Not the file while the witness
    //    is: void if denoised counted no overrun (the server did not deliver the stream it
    //    played), a failure if it did.
    // 4. the recording against the tap's output: denoised's playback and the server's output
    //    side. Not the same: void if denoised counted no underrun, a failure if it did.
    // Each is judged by its worst 10 ms block (`worst_block_db`), so one lost hop shows.
    // A void attempt runs again, at most three in all; a fault that repeats still fails.
    let secs = padded.len() as f64 / 48000.0 + 4.0;
    let mut attempt = 0;
    let live = loop {
        attempt += 1;
        let rec_path = d.path().join(format!("rec{attempt}.wav"));
        let witness_path = d.path().join(format!("witness{attempt}.wav"));
        let tap_dir = d.path().join(format!("tap{attempt}"));
        let run = spawn_run(&["--tap", tap_dir.to_str().unwrap()], secs);
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
        let (underruns, overruns) = (
            final_count(&log, "underruns"),
            final_count(&log, "overruns"),
        );
        let void = |what: String| {
            eprintln!("attempt {attempt}: {what}: void");
            assert!(
                attempt < 3,
                "3 void attempts in a row: the audio did not reach denoised, or its output the \
                 recording, as written (a stall of the test's player or the server does not repeat \
                 three times; an uncounted glitch in denoised's callbacks would)"
            );
        };

        // 1. the server's input side
        let heard = read_wav(&witness_path).channels.remove(0);
        let (witness_db, in_lag) = match_at(&padded, &heard, speech.clone());
        if witness_db > AS_WRITTEN_DB {
            void(format!(
                "the input the server played was not the file (worst 10 ms {witness_db:.1} dB, \
                 at lag {in_lag} of {} samples recorded)",
                heard.len()
            ));
            continue;
        }

        // 2. denoised's own path
        let tap_in_path = tap_dir.join("input.wav");
        let tap_in = read_wav(&tap_in_path).channels.remove(0);
        let tap_out = read_wav(&tap_dir.join("output.wav")).channels.remove(0);
        assert_eq!(
            tap_in.len(),
            tap_out.len(),
            "the tap's files are in lock step"
        );
        let tap_off = clean_offline(
            &tap_in_path,
            &d.path().join(format!("tap{attempt}_offline.wav")),
        );
        let lag = lag_of(&tap_off, &tap_out);
        let (own_db, n) = overlap_db(&tap_off, &tap_out, lag);
        eprintln!(
            "attempt {attempt}: denoised's worker against offline on what it heard: worst 10 ms \
             {own_db:.1} dB (lag {lag} samples over {n})"
        );
        assert!(
            own_db < AS_WRITTEN_DB && n > tap_out.len() / 2,
            "denoised's worker output differs from the offline result of its own input: \
             worst 10 ms {own_db:.1} dB over {n} samples"
        );

        // 3. denoised's capture
        let (capture_db, cap_lag) = match_at(&padded, &tap_in, speech.clone());
        eprintln!(
            "attempt {attempt}: captured input against the file: worst 10 ms {capture_db:.1} dB"
        );
        if capture_db > AS_WRITTEN_DB {
            assert_eq!(
                overruns, 0,
                "denoised lost captured input (worst 10 ms {capture_db:.1} dB, at lag {cap_lag})"
            );
            void(format!(
                "the server did not deliver the input it played (worst 10 ms {capture_db:.1} dB, \
                 the witness {witness_db:.1} dB; no overrun counted)"
            ));
            continue;
        }

        // 4. denoised's playback and the server's output side
        let recorded = read_wav(&rec_path).channels.remove(0);
        let rec_lag = lag_of(&tap_out, &recorded);
        let (played_db, m) = overlap_db(&tap_out, &recorded, rec_lag);
        eprintln!(
            "attempt {attempt}: recording against denoised's output: worst 10 ms {played_db:.1} dB \
             (lag {rec_lag} samples over {m})"
        );
        if played_db > AS_WRITTEN_DB || m < speech.len() {
            assert_eq!(
                underruns, 0,
                "denoised's playback has gaps (worst 10 ms {played_db:.1} dB against what the worker made)"
            );
            void(format!(
                "denoised's output did not reach the recording as written (worst 10 ms \
                 {played_db:.1} dB over {m} samples; no underrun counted)"
            ));
            continue;
        }
        let lag = lag_of(&offline, &recorded);
        eprintln!("attempt {attempt}: output lag {lag} samples");
        let out = aligned(&recorded, lag, speech.clone());
        assert!(
            out.is_some(),
            "the recording ({} samples at lag {lag}) does not cover the speech",
            recorded.len()
        );
        break out.unwrap().to_vec();
    };
    let vs_offline = si_sdr_db(&live, &offline[speech.clone()]);
    let live_gain = si_sdr_db(&live, &clean) - si_sdr_db(&noisy, &clean);
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
