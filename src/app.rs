//! Runs one command with validated settings. Printing to stdout is for results; messages
//! go to stderr.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::cli::{Cli, Command, ModelCommand};
use crate::config;
use crate::error::{Error, Result};
use crate::model::{LoadOptions, Model, Provider, ensure_runtime, onnx_file};
use crate::offline;

/// Run the parsed command line. Returns the process exit status.
pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Clean(args) => {
            let opts = config::clean_options(&args, !cli.quiet)?;
            let (jobs, mut failed) = offline::plan(&args.inputs, &args.output)?;
            let rep = if jobs.is_empty() {
                offline::Report::default()
            } else {
                offline::clean(jobs, &opts)?
            };
            if !rep.provider.is_empty() && !cli.quiet {
                eprintln!("denoised: execution provider: {}", rep.provider);
            }
            failed.extend(rep.failed);
            if !cli.quiet {
                for j in &rep.done {
                    eprintln!("denoised: {} -> {}", j.input.display(), j.output.display());
                }
            }
            if rep.done.is_empty() && failed.is_empty() {
                eprintln!("denoised: error: no .wav files found in the inputs");
                return Ok(1);
            }
            if failed.is_empty() {
                return Ok(0);
            }
            eprintln!(
                "denoised: {} of {} files failed:",
                failed.len(),
                failed.len() + rep.done.len()
            );
            for (input, e) in &failed {
                match e {
                    Error::Input { path, .. } if path == input => eprintln!("  {e}"),
                    _ => eprintln!("  {}: {e}", input.display()),
                }
            }
            Ok(1)
        }
        Command::Model {
            command: ModelCommand::Info { file },
        } => {
            let path = config::resolve_model(file.as_deref())?;
            model_info(&path)?;
            Ok(0)
        }
        Command::Run(args) => {
            let opts = config::run_options(&args, cli.verbose)?;
            if opts.virtual_mic {
                // before any thread exists (signal handlers, ONNX Runtime, streams)
                crate::audio::virtual_mic::route_playback_to_sink()?;
            }
            run_live(opts, &args)
        }
        Command::Status { json } => client(if json { "status json" } else { "status" }),
        Command::Set { setting, value } => {
            let key = match setting {
                crate::cli::SettingArg::AttenuationLimitDb => "attenuation-limit-db",
                crate::cli::SettingArg::WetDry => "wet-dry",
            };
            client(&format!("set {key} {value}"))
        }
        Command::Bypass { state } => client(if state == crate::cli::OnOff::On {
            "bypass on"
        } else {
            "bypass off"
        }),
        Command::Reload => client("reload"),
        Command::Service { command } => crate::service::install::run(command),
        Command::Devices => {
            let devices = crate::audio::list_devices()?;
            if devices.is_empty() {
                eprintln!("denoised: no audio devices found");
                return Ok(1);
            }
            for d in devices {
                println!(
                    "{} {:<6} {:<40} {} ch, {} Hz, {}{}",
                    if d.is_default { "*" } else { " " },
                    if d.direction == crate::audio::Direction::Input {
                        "input"
                    } else {
                        "output"
                    },
                    d.name,
                    d.channels,
                    d.rate_hz,
                    d.format,
                    if d.supports_48k {
                        ""
                    } else {
                        " (no 48 kHz: not usable yet)"
                    }
                );
            }
            Ok(0)
        }
        Command::Bench(args) => {
            let opts = config::bench_options(&args)?;
            crate::bench::run(&opts)?;
            Ok(0)
        }
    }
}

/// Send one request to the running daemon and print its reply; exit 1 on an error reply.
fn client(req: &str) -> Result<i32> {
    let reply = crate::control::request(req)?;
    match reply.strip_prefix("ok") {
        Some(rest) => {
            let rest = rest.trim_start_matches([' ', '\n']);
            if !rest.is_empty() {
                println!("{rest}");
            }
            Ok(0)
        }
        None => {
            eprintln!("denoised: {reply}");
            Ok(1)
        }
    }
}

/// `denoised run` with validated settings.
fn run_live(opts: config::RunOptions, args: &crate::cli::RunArgs) -> Result<i32> {
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    let sig_err = |e: std::io::Error| Error::Device {
        msg: format!("cannot install signal handler: {e}"),
    };
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // a second signal while stopping exits at once (status 1)
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone()).map_err(sig_err)?;
        signal_hook::flag::register(sig, stop.clone()).map_err(sig_err)?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone()).map_err(sig_err)?;
    crate::live::run(&opts, args, stop, reload)?;
    Ok(0)
}

fn model_info(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::model(path, format!("cannot read: {e}")))?;
    let lib = ensure_runtime()?;
    let model = Model::load(
        path,
        &LoadOptions {
            provider: Provider::Cpu,
            intra_threads: 1,
        },
    )?;
    let spec = model.spec();
    println!("file        {}", path.display());
    println!("sha256      {}", onnx_file::sha256_hex(&bytes));
    println!("size        {} bytes", bytes.len());
    match onnx_file::parameter_count(&bytes) {
        Some(n) => println!("parameters  {n}"),
        None => println!("parameters  (could not be counted)"),
    }
    println!("runtime     {}", lib.display());
    println!(
        "contract    {} (sample rate {} Hz, FFT {}, hop {}, {} bins, lookahead {} frames)",
        crate::model::contract::CONTRACT_VERSION,
        spec.sample_rate_hz,
        spec.fft_size,
        spec.hop_size,
        spec.bins,
        spec.lookahead_frames
    );
    match spec.deep_filter {
        Some(df) => println!(
            "deep filter {} taps on bins 0..{} (this frame and {} before it)",
            df.order,
            df.bins,
            df.order - 1
        ),
        None => println!("deep filter none (gains only)"),
    }
    println!("metadata");
    for (k, v) in &spec.metadata {
        println!("  {k} = {v}");
    }
    println!("inputs");
    for (n, t) in &spec.inputs {
        println!("  {n}: {t}");
    }
    println!("outputs");
    for (n, t) in &spec.outputs {
        println!("  {n}: {t}");
    }
    Ok(())
}
