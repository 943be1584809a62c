//! The `denoised` binary: parse, run, map errors to exit codes. Everything else is in the
//! library.

use clap::Parser;

fn main() {
    let cli = denoised::cli::Cli::parse();
    if let denoised::cli::Command::Run(args) = &cli.command {
        if args.virtual_mic {
            // The clean audio goes to our null sink: libpulse (under ALSA's pulse plugin,
            // which cpal uses) sends new playback streams to $PULSE_SINK.
            // SAFETY: still single-threaded here; nothing reads the environment concurrently.
            unsafe { std::env::set_var("PULSE_SINK", denoised::audio::virtual_mic::SINK_NAME) };
        }
    }
    let code = match denoised::app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            let code = e.exit_code();
            eprintln!("denoised: error: {:#}", anyhow::Error::new(e));
            code
        }
    };
    std::process::exit(code);
}
