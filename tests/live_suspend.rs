//! Surviving a frozen sound server and a system suspend. A running `denoised run` (input
//! `test_in.monitor`, output `test_out`) first sees PulseAudio stopped for 6 s (`kill
//! -STOP`: a hung server), then both PulseAudio and itself stopped for 6 s (what a suspend
//! does to every process; after it, the clock has jumped and no audio came for seconds).
//! After each, noisy speech played into `test_in` must come out of `test_out` again, and
//! denoised must still stop cleanly. Its own test binary, because it stops the shared test
//! server (cargo runs test binaries one after another). Skipped unless DENOISED_PULSE_TESTS=1.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// The test server's pid, from the file PulseAudio writes in its runtime folder.
fn server_pid() -> u32 {
    let dir = std::env::var("XDG_RUNTIME_DIR").expect("XDG_RUNTIME_DIR (scripts/test sets it)");
    let pid = std::fs::read_to_string(Path::new(&dir).join("pulse/pid")).expect("pulse/pid");
    pid.trim().parse().expect("a pid")
}

/// Stop `pids` in the given order for `secs`, then let them go on in the reverse order.
fn freeze(pids: &[u32], secs: u64) {
    for &p in pids {
        signal(p, "-STOP");
    }
    std::thread::sleep(Duration::from_secs(secs));
    for &p in pids.iter().rev() {
        signal(p, "-CONT");
    }
}

/// RMS of `test_out` while `play` is played into `test_in`.
fn output_rms(play: &Path, rec_path: &Path) -> f64 {
    let rec = Recorder::start("test_out.monitor", rec_path);
    std::thread::sleep(Duration::from_millis(300));
    play_into("test_in", play);
    std::thread::sleep(Duration::from_millis(1000));
    rec.stop();
    let recorded = read_wav(rec_path).channels.remove(0);
    (recorded.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / recorded.len().max(1) as f64)
        .sqrt()
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Until the output carries audio again (the reconnect loop backs off up to 5 s): the first
/// RMS that clears `floor`, or the last one measured.
fn wait_for_audio(play: &Path, d: &Path, what: &str, floor: f64) -> f64 {
    let t = Instant::now();
    let mut k = 0;
    loop {
        k += 1;
        let rms = output_rms(play, &d.join(format!("{what}{k}.wav")));
        eprintln!("{what}, try {k}: output RMS {rms:.4}");
        if rms > floor || t.elapsed() > Duration::from_secs(30) {
            return rms;
        }
    }
}

fn spawn_run(log_path: &Path) -> Child {
    live_run_command()
        .args(["--duration-s", "120"])
        .env("PULSE_SINK", "test_out")
        .stderr(Stdio::from(std::fs::File::create(log_path).unwrap()))
        .spawn()
        .unwrap()
}

#[test]
fn run_survives_a_frozen_server_and_a_system_suspend() {
    if std::env::var_os("DENOISED_PULSE_TESTS").is_none() {
        eprintln!("DENOISED_PULSE_TESTS not set; skipped");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let log_path = d.path().join("run.log");
    // 3 s of held-out speech in white noise at 5 dB SNR
    let (_, noisy, p) = speech_in_noise(Some(3 * 48000), 5);
    let play = d.path().join("play.wav");
    write_wav(&play, 48000, 32, true, &[noisy]);
    // denoised speech, recorded with the pauses around it, is well above a third of the
    // clean speech's RMS over the recording's span (0.3 as in live_restart); silence is 0
    let floor = 0.3 * p.sqrt();

    let mut run = spawn_run(&log_path);
    let t = Instant::now();
    while !log_of(&log_path).contains("latency budget") {
        assert!(
            t.elapsed() < Duration::from_secs(20) && run.try_wait().unwrap().is_none(),
            "denoised run did not start:\n{}",
            log_of(&log_path)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = wait_for_audio(&play, d.path(), "before", floor);
    assert!(before > floor, "no audio before anything was frozen");

    // a hung server: denoised sees no audio for more than its 2 s stall limit
    freeze(&[server_pid()], 6);
    let after_hang = wait_for_audio(&play, d.path(), "after the hung server", floor);

    // a suspend: everything stops; the server wakes first, as systemd resumes user services
    freeze(&[run.id(), server_pid()], 6);
    let after_suspend = wait_for_audio(&play, d.path(), "after the suspend", floor);

    signal(run.id(), "-TERM");
    let status = run.wait().unwrap();
    let log = log_of(&log_path);
    eprintln!("{log}");
    assert!(
        after_hang > floor,
        "no audio after the server hung for 6 s: output RMS {after_hang:.4}"
    );
    assert!(
        after_suspend > floor,
        "no audio after a 6 s suspend: output RMS {after_suspend:.4}"
    );
    assert!(status.success(), "denoised run should exit 0 after SIGTERM");
}
