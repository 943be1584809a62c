//! The `denoised` binary: parse, run, map errors to exit codes (78 for a bad
//! configuration). Everything else is in the library.

use clap::Parser;
use denoised::cli::Cli;

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
    match denoised::app::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => exit_with(e),
    }
}
