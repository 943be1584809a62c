//! The `denoised` binary: parse, run, map errors to exit codes. Everything else is in the
//! library.

use clap::Parser;

fn main() {
    let cli = denoised::cli::Cli::parse();
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
