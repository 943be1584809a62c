//! The control socket: `$XDG_RUNTIME_DIR/denoised/control.sock` (mode 0600), one request
//! line per connection, a reply, then close. Requests:
//!
//! ```text
//! status | status json | set attenuation-limit-db N | set wet-dry X | bypass on|off | reload
//! ```
//!
//! Replies start with `ok`, or `error:` for a bad request (which never affects the
//! daemon). The socket also makes a second instance refuse to start. Served by an
//! ordinary thread; the audio path never sees it.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::error::{Error, Result};
use crate::rt::RtStats;
use crate::worker::{Control, WorkerStats};

/// Longest request we read; anything longer is refused.
const MAX_REQUEST_BYTES: u64 = 1024;

/// What the daemon shows and what the socket may change.
pub struct Shared {
    pub stats: Arc<RtStats>,
    pub wstats: Arc<WorkerStats>,
    pub info: Mutex<Info>,
    /// set by `reload` (and SIGHUP): the supervisor re-reads the configuration
    pub reload: Arc<AtomicBool>,
}

/// Slow-changing facts about the daemon, for `status`.
pub struct Info {
    pub state: String,
    pub input: String,
    pub output: String,
    pub provider: String,
    pub model: String,
    /// the running model's lookahead: a model with another one changes the latency, so a
    /// reload does not swap it in (see `live::reload`)
    pub lookahead_frames: usize,
    pub latency_ms: f64,
    pub attenuation_limit_db: f32,
    pub wet: f32,
    pub bypass: bool,
    pub started: Instant,
    /// the worker's control channel (replaced when the pipeline is rebuilt)
    pub ctl: Option<Sender<Control>>,
}

pub fn socket_path() -> PathBuf {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    base.join("denoised").join("control.sock")
}

/// Bind the socket; refuse if another instance answers on it, replace a stale one.
pub fn bind() -> Result<UnixListener> {
    let path = socket_path();
    let err = |msg: String| Error::Device { msg };
    if path.exists() {
        if UnixStream::connect(&path).is_ok() {
            return Err(err(format!(
                "another denoised is already running (it answers on {}); stop it first (`systemctl --user stop denoised` or its terminal)",
                path.display()
            )));
        }
        let _ = std::fs::remove_file(&path);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let l = UnixListener::bind(&path)
        .map_err(|e| err(format!("cannot listen on {}: {e}", path.display())))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| err(format!("cannot restrict {}: {e}", path.display())))?;
    l.set_nonblocking(true).map_err(|e| err(e.to_string()))?;
    Ok(l)
}

/// Serve requests until `stop`; removes the socket file at the end.
pub fn serve(listener: UnixListener, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((conn, _)) => {
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
                let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
                handle_conn(conn, &shared);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let _ = std::fs::remove_file(socket_path());
}

fn handle_conn(conn: UnixStream, shared: &Shared) {
    let mut line = String::new();
    let reply = match BufReader::new((&conn).take(MAX_REQUEST_BYTES)).read_line(&mut line) {
        Ok(_) if !line.ends_with('\n') && line.len() as u64 >= MAX_REQUEST_BYTES => {
            format!("error: request longer than {MAX_REQUEST_BYTES} bytes")
        }
        Ok(_) => handle(line.trim(), shared),
        Err(e) => format!("error: unreadable request ({e}); requests are one line of UTF-8 text"),
    };
    let mut w = &conn;
    let _ = w.write_all(reply.as_bytes());
    let _ = w.write_all(b"\n");
}

const USAGE: &str = "commands: status | status json | set attenuation-limit-db N | set wet-dry X | bypass on|off | reload";

/// One request -> one reply.
pub fn handle(req: &str, shared: &Shared) -> String {
    let words: Vec<&str> = req.split_whitespace().collect();
    let send = |c: Control| -> bool {
        let info = shared.info.lock().unwrap_or_else(|p| p.into_inner());
        info.ctl.as_ref().is_some_and(|tx| tx.send(c).is_ok())
    };
    match words.as_slice() {
        ["status"] => status_text(shared),
        ["status", "json"] => status_json(shared),
        ["set", "attenuation-limit-db", v] => match v.parse::<f32>() {
            Ok(db) if (0.0..=100.0).contains(&db) => {
                send(Control::SetAttenuationLimitDb(db));
                shared
                    .info
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .attenuation_limit_db = db;
                format!("ok attenuation-limit-db = {db}")
            }
            _ => format!("error: attenuation-limit-db {v:?}: allowed 0 to 100"),
        },
        ["set", "wet-dry", v] => match v.parse::<f32>() {
            Ok(w) if (0.0..=1.0).contains(&w) => {
                send(Control::SetWet(w));
                shared.info.lock().unwrap_or_else(|p| p.into_inner()).wet = w;
                format!("ok wet-dry = {w}")
            }
            _ => format!("error: wet-dry {v:?}: allowed 0.0 to 1.0"),
        },
        ["bypass", v @ ("on" | "off")] => {
            let on = *v == "on";
            send(Control::Bypass(on));
            shared.info.lock().unwrap_or_else(|p| p.into_inner()).bypass = on;
            format!("ok bypass {v}")
        }
        ["reload"] => {
            shared.reload.store(true, Ordering::Relaxed);
            "ok reloading the configuration".to_string()
        }
        [] => format!("error: empty request; {USAGE}"),
        _ => format!(
            "error: unknown request {:?}; {USAGE}",
            req.chars().take(80).collect::<String>()
        ),
    }
}

/// Process CPU time (user + system) in seconds, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // fields after the ")" of the command name: utime is the 12th, stime the 13th
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}

/// One reading of the status, the same fields for the text and the JSON reply.
#[derive(serde::Serialize)]
struct Snapshot {
    state: String,
    input: String,
    output: String,
    provider: String,
    model: String,
    latency_ms: f64,
    attenuation_limit_db: f32,
    #[serde(rename = "wet_dry")]
    wet: f32,
    bypass: bool,
    uptime_s: f64,
    cpu_percent: f64,
    underruns: u64,
    overruns: u64,
    stream_errors: u64,
    #[serde(rename = "hop_time_p99_us")]
    hop_p99_us: u64,
    hops: u64,
    speech_prob: f32,
}

fn snapshot(s: &Shared) -> Snapshot {
    let i = s.info.lock().unwrap_or_else(|p| p.into_inner());
    let uptime_s = i.started.elapsed().as_secs_f64();
    Snapshot {
        state: i.state.clone(),
        input: i.input.clone(),
        output: i.output.clone(),
        provider: i.provider.clone(),
        model: i.model.clone(),
        latency_ms: i.latency_ms,
        attenuation_limit_db: i.attenuation_limit_db,
        wet: i.wet,
        bypass: i.bypass,
        uptime_s,
        cpu_percent: 100.0 * cpu_seconds() / uptime_s.max(1e-3),
        underruns: RtStats::get(&s.stats.output_underruns),
        overruns: RtStats::get(&s.stats.input_overruns),
        stream_errors: RtStats::get(&s.stats.stream_errors),
        hop_p99_us: s.wstats.hop_time_percentile_us(0.99),
        hops: s.wstats.hops.load(Ordering::Relaxed),
        speech_prob: s.wstats.speech_prob_milli.load(Ordering::Relaxed) as f32 / 1000.0,
    }
}

fn status_text(s: &Shared) -> String {
    let n = snapshot(s);
    format!(
        "ok\nstate: {}\ninput: {}\noutput: {}\nmodel: {} on {}\nlatency budget: {:.1} ms\nattenuation limit: {} dB, wet/dry: {}, bypass: {}\n\
         uptime: {:.0} s, CPU: {:.1} %\nhops: {}, hop time p99: {} us, speech probability: {:.2}\n\
         under-runs: {}, over-runs: {}, stream errors: {}",
        n.state,
        n.input,
        n.output,
        n.model,
        n.provider,
        n.latency_ms,
        n.attenuation_limit_db,
        n.wet,
        if n.bypass { "on" } else { "off" },
        n.uptime_s,
        n.cpu_percent,
        n.hops,
        n.hop_p99_us,
        n.speech_prob,
        n.underruns,
        n.overruns,
        n.stream_errors
    )
}

fn status_json(s: &Shared) -> String {
    // Snapshot holds only strings and numbers: serialising it cannot fail
    let json =
        serde_json::to_string(&snapshot(s)).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    format!("ok {json}")
}

/// Client side: send one request, return the reply (without the trailing newline).
pub fn request(req: &str) -> Result<String> {
    let path = socket_path();
    let mut c = UnixStream::connect(&path).map_err(|e| Error::Device {
        msg: format!(
            "no denoised answers on {} ({e}); is it running (`denoised run` or the service)?",
            path.display()
        ),
    })?;
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    c.write_all(format!("{req}\n").as_bytes())
        .map_err(|e| Error::Device { msg: e.to_string() })?;
    let mut reply = String::new();
    c.read_to_string(&mut reply)
        .map_err(|e| Error::Device { msg: e.to_string() })?;
    Ok(reply.trim_end().to_string())
}
