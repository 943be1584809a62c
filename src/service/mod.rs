//! Living under systemd: sd_notify messages (READY, STOPPING, WATCHDOG, STATUS) on
//! $NOTIFY_SOCKET, and log lines with journald priority prefixes when stderr is the
//! journal ($JOURNAL_STREAM set), plain "denoised: " lines on a terminal.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Log priorities, as journald's `<N>` prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Error = 3,
    Warning = 4,
    Info = 6,
    Debug = 7,
}

/// One log line to stderr (ordinary threads only).
pub fn log(p: Priority, msg: &str) {
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        eprintln!("<{}>{msg}", p as u8);
    } else {
        match p {
            Priority::Error => eprintln!("denoised: error: {msg}"),
            Priority::Warning => eprintln!("denoised: warning: {msg}"),
            _ => eprintln!("denoised: {msg}"),
        }
    }
}

/// The systemd notification socket, if we run under `Type=notify`.
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    /// half the watchdog interval, if systemd asked for pings
    pub watchdog_every: Option<Duration>,
}

impl Notifier {
    /// From $NOTIFY_SOCKET and $WATCHDOG_USEC (honouring $WATCHDOG_PID).
    pub fn from_env() -> Self {
        let socket = std::env::var("NOTIFY_SOCKET").ok().and_then(|path| {
            use std::os::linux::net::SocketAddrExt;
            let addr = match path.strip_prefix('@') {
                Some(abs) => {
                    std::os::unix::net::SocketAddr::from_abstract_name(abs.as_bytes()).ok()?
                }
                None => std::os::unix::net::SocketAddr::from_pathname(&path).ok()?,
            };
            let s = UnixDatagram::unbound().ok()?;
            // never block the supervisor on a slow reader (a full datagram queue would)
            s.set_nonblocking(true).ok()?;
            Some((s, addr))
        });
        let for_us = std::env::var("WATCHDOG_PID")
            .map_or(true, |p| p.parse::<u32>().ok() == Some(std::process::id()));
        let watchdog_every = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us)
            .map(|u| Duration::from_micros(u / 2));
        Self {
            socket,
            watchdog_every,
        }
    }

    pub fn active(&self) -> bool {
        self.socket.is_some()
    }

    /// Send one notification ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=..."); a
    /// failure is ignored, as sd_notify does.
    pub fn notify(&self, msg: &str) {
        if let Some((s, addr)) = &self.socket {
            let _ = s.send_to_addr(msg.as_bytes(), addr);
        }
    }
}

pub mod install;
