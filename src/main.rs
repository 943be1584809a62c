//! The `denoised` binary: parse, build the validated settings, run, map errors to exit
//! codes (78 for a bad configuration). Everything else is in the library.

use clap::Parser;
use denoised::cli::{Cli, Command};

fn exit_with(e: denoised::Error) -> ! {
    let code = e.exit_code();
    denoised::service::log(
        denoised::service::Priority::Error,
        &format!("{:#}", anyhow::Error::new(e)),
    );
    std::process::exit(code);
}

fn main() {
    let cli = Cli::parse();
    if let Command::Run(args) = &cli.command {
        let opts =
            denoised::config::run_options(args, cli.verbose).unwrap_or_else(|e| exit_with(e));
        if opts.virtual_mic {
            // The clean audio goes to our null sink: libpulse (under ALSA's pulse plugin,
            // which cpal uses) sends new playback streams to $PULSE_SINK.
            // SAFETY: still single-threaded here; nothing reads the environment concurrently.
            unsafe { std::env::set_var("PULSE_SINK", denoised::audio::virtual_mic::SINK_NAME) };
        }
        match denoised::app::run_live(opts, args) {
            Ok(code) => std::process::exit(code),
            Err(e) => exit_with(e),
        }
    }
    match denoised::app::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => exit_with(e),
    }
}
