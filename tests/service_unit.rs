//! The systemd user unit: it verifies (`systemd-analyze verify`, where installed) with this
//! build's paths filled in, and it carries the settings the service relies on.

use std::process::Command;

#[test]
fn unit_verifies_and_has_notify_watchdog_and_no_restart_on_bad_config() {
    let text = denoised::service::install::unit_text().unwrap();
    for needle in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_UNIX AF_NETLINK",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(text.contains(needle), "unit lacks {needle}");
    }
    assert!(!text.contains("@BIN@") && !text.contains("@REPO@"));
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze not installed; verify skipped");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let unit = d.path().join("denoised.service");
    std::fs::write(&unit, &text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("denoised.service:"),
        "systemd-analyze verify:\n{err}"
    );
}
