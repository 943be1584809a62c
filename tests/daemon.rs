//! The daemon as systemd and a user see it, against the user-space PulseAudio server
//! (skipped unless DENOISED_PULSE_TESTS=1): READY and WATCHDOG reach a fake NOTIFY_SOCKET,
//! `status` answers over the control socket, `set` changes the output measurably, SIGHUP
//! reloads a changed file, malformed requests get errors, a second instance refuses, and
//! SIGTERM sends STOPPING, exits 0 within 2 s and removes the virtual microphone.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("denoised")
}

fn pactl(args: &[&str]) -> String {
    String::from_utf8_lossy(&Command::new("pactl").args(args).output().unwrap().stdout).into_owned()
}

fn cli(args: &[&str]) -> (bool, String) {
    let o = Command::new(bin()).args(args).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

/// The reply of `denoised status --json`, parsed (Null when it is not JSON).
/// The daemon's config file: the test's audio settings, `denoise` (the lines of the
/// [denoise] table) and the fixture model `model`.
fn write_config(cfg: &Path, denoise: &str, model: &str) {
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(format!("{model}.onnx"));
    std::fs::write(
        cfg,
        format!(
            "[audio]\nvirtual_mic = true\nlatency_ms = 200\nbuffer_frames = 2400\n[denoise]\n{denoise}[model]\npath = {:?}\n",
            model.display().to_string()
        ),
    )
    .unwrap();
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim()).unwrap_or(serde_json::Value::Null)
}

fn raw_request(bytes: &[u8]) -> String {
    let sock = Path::new(&std::env::var("XDG_RUNTIME_DIR").unwrap()).join("denoised/control.sock");
    let mut c = UnixStream::connect(sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = c.write_all(bytes);
    let mut r = String::new();
    let _ = c.read_to_string(&mut r);
    r
}

/// RMS of what the virtual microphone carries for `secs` while white noise plays.
fn mic_rms_during_noise(dir: &Path, tag: &str, secs: f32) -> f64 {
    let play = dir.join(format!("noise_{tag}.wav"));
    write_wav(
        &play,
        48000,
        32,
        true,
        &[noise((48000.0 * secs) as usize, 0.1, 5)],
    );
    let rec = dir.join(format!("rec_{tag}.wav"));
    let r = Recorder::start("denoised_mic", &rec);
    std::thread::sleep(Duration::from_millis(200));
    play_into("test_in", &play);
    r.stop();
    let x = read_wav(&rec).channels.remove(0);
    // the level while the noise is really there: the median of the louder half of 100 ms
    // frames (the null sinks add a variable delay, so the recording starts and ends silent)
    let mut frames: Vec<f64> = x
        .chunks_exact(4800)
        .map(|f| (f.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / 4800.0).sqrt())
        .collect();
    frames.sort_by(|a, b| b.total_cmp(a));
    frames.get(frames.len() / 4).copied().unwrap_or(0.0)
}

#[test]
fn daemon_notifies_answers_obeys_reloads_and_stops_cleanly() {
    if std::env::var_os("DENOISED_PULSE_TESTS").is_none() {
        eprintln!("DENOISED_PULSE_TESTS not set; skipped");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let notify_path = d.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let cfg = d.path().join("config.toml");
    // the zero-gain fixture model: the attenuation limit alone sets the output level, so the
    // effect of `set` is exact and does not depend on what a trained model makes of noise
    write_config(&cfg, "attenuation_limit_db = 30\n", "zero_gain");
    let log = d.path().join("daemon.log");
    let t0 = Instant::now();
    /// Kills the daemon if the test fails half-way (a leftover would hold the socket).
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let daemon = Command::new(bin())
        .args(["run", "--provider", "cpu", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "2000000")
        .env("PULSE_SOURCE", "test_in.monitor")
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let mut daemon = Reap(daemon);
    let pid = daemon.0.id().to_string();
    let mut buf = [0u8; 512];
    let mut got = |want: &str| -> Duration {
        loop {
            let n = notify.recv(&mut buf).unwrap_or_else(|e| {
                panic!(
                    "no {want} from the daemon ({e}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == want)
            {
                return t0.elapsed();
            }
        }
    };
    let ready = got("READY=1");
    eprintln!("READY after {:.0} ms", ready.as_secs_f64() * 1e3);
    got("WATCHDOG=1");

    let (ok, out) = cli(&["status"]);
    assert!(
        ok && out.contains("state: running") && out.contains("Denoised microphone"),
        "{out}"
    );
    let (ok, out) = cli(&["status", "--json"]);
    let j = json(&out);
    assert!(
        ok && j["state"] == "running" && j["attenuation_limit_db"] == 30.0,
        "{out}"
    );
    for key in [
        "underruns",
        "overruns",
        "stream_errors",
        "hops",
        "hop_time_p99_us",
    ] {
        assert!(
            j[key].is_u64(),
            "status json lacks the counter {key}: {out}"
        );
    }

    // a second instance refuses, and says why
    let (ok, out) = cli(&[
        "run",
        "--provider",
        "cpu",
        "--no-virtual-mic",
        "--duration-s",
        "2",
    ]);
    assert!(!ok && out.contains("already running"), "{out}");

    // malformed requests get an error reply and change nothing
    assert!(raw_request(b"frobnicate\n").starts_with("error:"));
    assert!(raw_request(&[0xff, 0xfe, b'\n']).starts_with("error:"));
    assert!(raw_request(&vec![b'x'; 5000]).starts_with("error:"));
    assert!(raw_request(b"set wet-dry 7\n").starts_with("error:"));
    assert!(raw_request(b"").starts_with("error:"));
    assert!(cli(&["status"]).0, "the daemon still answers");

    // `set` changes the output measurably: noise with no limit vs a 40 dB limit
    assert!(cli(&["set", "attenuation-limit-db", "0"]).0);
    let open = mic_rms_during_noise(d.path(), "open", 4.0);
    assert!(cli(&["set", "attenuation-limit-db", "40"]).0);
    // let the unlimited noise still in flight (output ring, null-sink latency up to 1.3 s)
    // drain before measuring the limited level
    std::thread::sleep(Duration::from_millis(2500));
    let limited = mic_rms_during_noise(d.path(), "limited", 4.0);
    let change_db = 20.0 * (open / limited.max(1e-9)).log10();
    eprintln!(
        "white noise through the daemon: {open:.4} RMS at 0 dB limit, {limited:.4} at 40 dB: {change_db:.1} dB"
    );
    // the zero-gain model: the output level is exactly the limit (measured 40.0 dB)
    assert!(
        (change_db - 40.0).abs() < 3.0,
        "a 40 dB limit should take 40 dB off ({change_db:.1} dB)"
    );

    // a model with another lookahead (another latency) is not swapped in on a reload: the
    // reload says it takes effect after a restart, and the running model stays
    write_config(&cfg, "attenuation_limit_db = 30\n", "identity_la2");
    let (ok, out) = cli(&["reload"]);
    assert!(ok, "{out}");
    let t_reload = Instant::now();
    let said = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("takes effect after a restart")
            || t_reload.elapsed() > Duration::from_secs(10)
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        said.contains("has 2 frames of lookahead (the running one 0)"),
        "{out}\n{said}"
    );
    let (_, out) = cli(&["status", "--json"]);
    assert!(json(&out)["model"] == "zero_gain", "{out}");

    // SIGHUP reloads the changed file, including a new model (crossfaded in)
    write_config(
        &cfg,
        "attenuation_limit_db = 12\nwet_dry = 0.5\n",
        "half_gain",
    );
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let t_hup = Instant::now();
    let out = loop {
        let (_, out) = cli(&["status", "--json"]);
        // settings apply at once; the new model is loaded off the audio path and swapped
        // in when ready, so wait for both (a busy machine loads it later)
        let j = json(&out);
        let swapped = j["attenuation_limit_db"] == 12.0 && j["model"] == "half_gain";
        if swapped || t_hup.elapsed() > Duration::from_secs(10) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let daemon_log = std::fs::read_to_string(&log).unwrap_or_default();
    let j = json(&out);
    assert!(
        j["attenuation_limit_db"] == 12.0 && j["wet_dry"] == 0.5,
        "{out}\n{daemon_log}"
    );
    assert!(
        j["model"] == "half_gain",
        "the new model was not swapped in: {out}"
    );
    assert!(
        j["state"] == "running",
        "audio keeps running across the swap: {out}"
    );

    // SIGTERM: STOPPING, exit 0 within 2 s, virtual microphone gone
    let t = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    got("STOPPING=1");
    let status = loop {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "not stopped within 2 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "stopped {:.0} ms after SIGTERM",
        t.elapsed().as_secs_f64() * 1e3
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "exit status {status:?}\n{text}");
    assert!(text.contains("reloaded"), "{text}");
    assert!(!pactl(&["list", "short", "modules"]).contains("denoised_mic"));
}
