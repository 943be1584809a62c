//! `denoised clean`: WAV files in, denoised WAV files out, same format, rate, channel count
//! and length, sample i of the output aligned with sample i of the input.
//!
//! Each file: read -> per channel (own model state): resample to 48 kHz (rubato) ->
//! denoise -> resample back -> write to a temporary file -> rename. Files are spread over
//! `jobs` worker threads, each with its own ONNX Runtime session. A file that fails is
//! reported and skipped; the others are still processed.

pub mod denoise;
pub mod resample;
pub mod wav;
mod wav_f64;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::dsp::{GainParams, HOP_SIZE, SAMPLE_RATE_HZ};
use crate::error::{Error, Result};
use crate::model::{LoadOptions, Model};

pub use denoise::{ChannelStats, denoise_channel};

/// One input file and where its result goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub input: PathBuf,
    pub output: PathBuf,
}

/// Settings for a `clean` run (validated in `config.rs`).
#[derive(Clone, Debug)]
pub struct CleanOptions {
    pub model_path: PathBuf,
    pub load: LoadOptions,
    pub gain: GainParams,
    pub jobs: usize,
    pub frames_per_call: usize,
    pub progress: bool,
}

/// What a `clean` run did.
#[derive(Debug, Default)]
pub struct Report {
    pub done: Vec<Job>,
    pub failed: Vec<(PathBuf, Error)>,
    pub provider: &'static str,
    pub audio_seconds: f64,
}

fn is_wav(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav"))
}

/// The WAV files below `dir`, sorted, hidden files left out. `skip` (the output folder,
/// normalized) is not entered: when it lies inside the input folder, a second run would
/// otherwise take the first run's results for inputs and nest a copy deeper each time.
/// Symbolic links are followed, but no folder is entered twice (`visited`, by canonical
/// path), so a link to a parent folder cannot make the walk go round.
fn walk_wavs(
    dir: &Path,
    skip: &Path,
    visited: &mut HashSet<PathBuf>,
    out: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    if !visited.insert(dir.canonicalize()?) {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            if normalize(&p) != skip {
                walk_wavs(&p, skip, visited, out)?;
            }
        } else if is_wav(&p)
            && !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            out.push(p);
        }
    }
    Ok(())
}

/// A path made absolute and free of `..`, also when it does not exist yet.
fn normalize(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => {
            normalize(parent).join(name)
        }
        (_, Some(name)) => std::env::current_dir().unwrap_or_default().join(name),
        _ => p.to_path_buf(),
    }
}

/// The jobs to run, and the inputs already known to fail (with why).
pub type Plan = (Vec<Job>, Vec<(PathBuf, Error)>);

/// Decide where each input goes. A single input file writes to `output` as a file (or into
/// it, if it is an existing folder); several inputs or a folder write into the folder
/// `output`, mirroring the structure below each input folder. Errors here concern the
/// whole run (unreadable input path, output not a folder); per-file problems come later.
pub fn plan(inputs: &[PathBuf], output: &Path) -> Result<Plan> {
    // `-` is the shell convention for a pipe; say so plainly rather than "no such file"
    let dash = |p: &Path| p.as_os_str() == "-" && !p.exists();
    if let Some(p) = inputs.iter().find(|p| dash(p)) {
        return Err(Error::input(
            p,
            "reading standard input is not supported: give WAV files or folders",
        ));
    }
    if dash(output) {
        return Err(Error::output(
            output,
            "writing to standard output is not supported: give a file or folder",
        ));
    }
    let mut jobs = Vec::new();
    let mut failed = Vec::new();
    let single_file = inputs.len() == 1 && !inputs[0].is_dir();
    if single_file && !output.is_dir() {
        jobs.push(Job {
            input: inputs[0].clone(),
            output: output.to_path_buf(),
        });
    } else {
        if output.exists() && !output.is_dir() {
            return Err(Error::output(
                output,
                "is a file; with several inputs or a folder, -o must name a folder",
            ));
        }
        let skip = normalize(output);
        for input in inputs {
            if input.is_dir() {
                let mut files = Vec::new();
                walk_wavs(input, &skip, &mut HashSet::new(), &mut files)
                    .map_err(|e| Error::input(input, format!("cannot list folder: {e}")))?;
                // one folder mirrors straight into OUTPUT; several keep their own names
                let base = if inputs.len() == 1 {
                    output.to_path_buf()
                } else {
                    output.join(input.file_name().unwrap_or_default())
                };
                for f in files {
                    let rel = f.strip_prefix(input).unwrap_or(&f).to_path_buf();
                    jobs.push(Job {
                        output: base.join(rel),
                        input: f,
                    });
                }
            } else {
                let name = input.file_name().unwrap_or_default();
                jobs.push(Job {
                    input: input.clone(),
                    output: output.join(name),
                });
            }
        }
    }
    // never overwrite an input, never write two results to one place
    let input_set: HashSet<PathBuf> = jobs.iter().map(|j| normalize(&j.input)).collect();
    let mut seen = HashSet::new();
    jobs.retain(|j| {
        let o = normalize(&j.output);
        if input_set.contains(&o) {
            failed.push((
                j.input.clone(),
                Error::output(
                    &j.output,
                    "refusing to overwrite an input file; choose another output",
                ),
            ));
            false
        } else if !seen.insert(o) {
            failed.push((
                j.input.clone(),
                Error::output(&j.output, "two inputs would be written to this same output"),
            ));
            false
        } else {
            true
        }
    });
    Ok((jobs, failed))
}

/// Clean one file with an already loaded model.
pub fn clean_file(
    model: &mut Model,
    job: &Job,
    opts: &CleanOptions,
    on_frames: &mut dyn FnMut(u64),
) -> Result<f64> {
    let audio = wav::read(&job.input)?;
    let rate = audio.spec.sample_rate;
    let frames = audio.frames();
    let n_ch = audio.channels.len();
    if let Some(dir) = job.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::output(dir, format!("cannot create folder: {e}")))?;
    }
    let mut cleaned = Vec::with_capacity(n_ch);
    let in_err = |e: String| Error::input(&job.input, e);
    for ch in &audio.channels {
        let x48 = resample::resample(ch, rate, SAMPLE_RATE_HZ).map_err(in_err)?;
        let hops_to_frames = HOP_SIZE as f64 * rate as f64 / SAMPLE_RATE_HZ as f64 / n_ch as f64;
        let mut report = |hops: usize| on_frames((hops as f64 * hops_to_frames) as u64);
        let (y48, stats) =
            denoise_channel(model, &x48, &opts.gain, opts.frames_per_call, &mut report)?;
        if stats.nonfinite_gains > 0 {
            crate::service::log(
                crate::service::Priority::Warning,
                &format!(
                    "{}: the model produced {} non-finite gains (those bins were left unchanged)",
                    job.input.display(),
                    stats.nonfinite_gains
                ),
            );
        }
        let mut y = resample::resample(&y48, SAMPLE_RATE_HZ, rate).map_err(in_err)?;
        y.resize(frames, 0.0);
        cleaned.push(y);
    }
    wav::write_atomic(&job.output, audio.spec, &cleaned)?;
    Ok(frames as f64 / rate as f64)
}

/// Clean every job on `opts.jobs` threads. Fails as a whole only when the model or the
/// runtime cannot be loaded; file errors are collected in the report.
pub fn clean(jobs: Vec<Job>, opts: &CleanOptions) -> Result<Report> {
    // Load once up front: a bad model fails the run before any file is touched.
    let first = Model::load(&opts.model_path, &opts.load)?;
    let provider = first.provider();
    let total_frames: u64 = jobs
        .iter()
        .map(|j| wav::probe(&j.input).map(|(_, n)| n).unwrap_or(0))
        .sum();
    let bar = if opts.progress {
        ProgressBar::with_draw_target(Some(total_frames), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let queue = Mutex::new(jobs.into_iter().collect::<std::collections::VecDeque<_>>());
    let results = Mutex::new(Report {
        provider,
        ..Default::default()
    });
    let n_threads = opts.jobs.max(1);
    let first = Mutex::new(Some(first));
    std::thread::scope(|s| {
        for i in 0..n_threads {
            let (queue, results, bar, first) = (&queue, &results, &bar, &first);
            std::thread::Builder::new()
                .name(format!("denoised-clean-{i}"))
                .spawn_scoped(s, move || {
                    let mut model = match first.lock().ok().and_then(|mut f| f.take()) {
                        Some(m) => m,
                        None => match Model::load(&opts.model_path, &opts.load) {
                            Ok(m) => m,
                            Err(_) => return, // the other threads carry on with the queue
                        },
                    };
                    // the guard moves into the closure and is dropped there: the queue
                    // is locked only while one job is taken, never while it is cleaned
                    while let Some(job) = queue.lock().ok().and_then(|mut q| q.pop_front()) {
                        bar.set_message(job.input.display().to_string());
                        let r = clean_file(&mut model, &job, opts, &mut |n| bar.inc(n));
                        let mut rep = match results.lock() {
                            Ok(r) => r,
                            Err(p) => p.into_inner(),
                        };
                        match r {
                            Ok(secs) => {
                                rep.audio_seconds += secs;
                                rep.done.push(job)
                            }
                            Err(e) => rep.failed.push((job.input, e)),
                        }
                    }
                })
                .expect("spawn clean worker thread");
        }
    });
    bar.finish_and_clear();
    let mut rep = results.into_inner().unwrap_or_else(|p| p.into_inner());
    rep.done.sort_by(|a, b| a.input.cmp(&b.input));
    Ok(rep)
}
