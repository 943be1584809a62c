//! `denoised run --tap DIR`: what the worker took from the capture ring (`input.wav`) and
//! what it handed towards the playback ring (`output.wav`), hop for hop, as mono 32-bit
//! float WAVs at 48 kHz. For bug reports ("this is what denoised heard and what it made of
//! it"), and for the live test, which with it tells denoised's own path from the sound
//! server's.
//!
//! Sample i of `output.wav` is the worker's answer to the input up to sample i of
//! `input.wav`: the two files are written in lock step, so they always have the same length,
//! and, with the same settings, `output.wav` equals the offline `clean` of `input.wav`
//! delayed by the stream's latency (one hop, 10 ms, for a model without lookahead; the live
//! test holds this to 40 dB SI-SDR and measures about 130). A reload that changes settings or
//! the model, bypass, and a rebuilt pipeline after a device loss (a gap) break that equality
//! from where they happen. Input resampling comes before the tap, output resampling (another
//! device rate, clock-drift trimming) after it.
//!
//! Real-time rule: the worker only copies each hop into two SPSC rings allocated here, up
//! front (no allocation, no lock, no I/O in its loop). A named writer thread drains them to
//! the files. If it falls behind, what does not fit is counted as lost, never waited for.
//! The files are written under temporary names and renamed when the run ends, so a file
//! named `input.wav` is always complete.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use crate::dsp::SAMPLE_RATE_HZ;
use crate::error::{Error, Result};

/// Ring capacity each way: 10 s, far more than the writer's 20 ms wake-up interval.
const RING_SAMPLES: usize = 10 * SAMPLE_RATE_HZ as usize;
const WAKE: Duration = Duration::from_millis(20);
const NAMES: [&str; 2] = ["input.wav", "output.wav"];

/// The worker's end: two ring producers and the lost-sample counter.
pub struct TapSide {
    input: HeapProd<f32>,
    output: HeapProd<f32>,
    lost_samples: Arc<AtomicU64>,
}

impl TapSide {
    /// Copy one hop of input and output. Never blocks or allocates; a hop that does not fit
    /// whole is dropped whole (both sides), so the files stay in lock step.
    pub fn push(&mut self, input: &[f32], output: &[f32]) {
        if self.input.vacant_len() < input.len() || self.output.vacant_len() < output.len() {
            self.lost_samples
                .fetch_add(input.len() as u64, Ordering::Relaxed);
            return;
        }
        self.input.push_slice(input);
        self.output.push_slice(output);
    }
}

/// What a finished tap wrote.
#[derive(Debug)]
pub struct TapReport {
    pub files: [PathBuf; 2],
    pub samples: u64,
    pub lost_samples: u64,
}

/// The writer thread and where it writes.
pub struct Tap {
    stop: Arc<AtomicBool>,
    lost_samples: Arc<AtomicU64>,
    /// taken by `finish`
    writer: Option<JoinHandle<Result<u64>>>,
    files: [PathBuf; 2],
}

/// A run that ends by an error skips `finish`: stopping the writer still puts complete
/// files in place (without waiting for it), instead of leaving it writing forever.
impl Drop for Tap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn io_err(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::output(path, what)
}

impl Tap {
    /// Create `dir` if needed and start the writer. Refuses a folder that already holds a
    /// tap's files: a tap never overwrites.
    pub fn start(dir: &Path) -> Result<(Tap, TapSide)> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let files = NAMES.map(|n| dir.join(n));
        if let Some(f) = files.iter().find(|f| f.exists()) {
            return Err(io_err(
                f,
                "already exists; the tap does not overwrite (give another --tap folder)",
            ));
        }
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: SAMPLE_RATE_HZ,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let partial = NAMES.map(|n| dir.join(format!(".{n}.partial")));
        let mut writers = Vec::with_capacity(2);
        for p in &partial {
            writers.push(hound::WavWriter::create(p, spec).map_err(|e| io_err(p, e))?);
        }
        let (in_prod, in_cons) = HeapRb::<f32>::new(RING_SAMPLES).split();
        let (out_prod, out_cons) = HeapRb::<f32>::new(RING_SAMPLES).split();
        let stop = Arc::new(AtomicBool::new(false));
        let lost_samples = Arc::new(AtomicU64::new(0));
        let out_w = writers.pop().expect("two writers");
        let in_w = writers.pop().expect("two writers");
        let thread_stop = stop.clone();
        let finals = files.clone();
        let writer = std::thread::Builder::new()
            .name("denoised-tap".into())
            .spawn(move || {
                write_loop(
                    [in_cons, out_cons],
                    [in_w, out_w],
                    &thread_stop,
                    &partial,
                    &finals,
                )
            })
            .map_err(|e| io_err(dir, format!("cannot start the tap's writer thread: {e}")))?;
        let side = TapSide {
            input: in_prod,
            output: out_prod,
            lost_samples: lost_samples.clone(),
        };
        Ok((
            Tap {
                stop,
                lost_samples,
                writer: Some(writer),
                files,
            },
            side,
        ))
    }

    /// Stop the writer after it has written everything pushed so far (call it once the
    /// worker has stopped), and put the files in place.
    pub fn finish(mut self) -> Result<TapReport> {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self
            .writer
            .take()
            .expect("finish runs once")
            .join()
            .map_err(|_| io_err(&self.files[0], "the tap's writer thread panicked"))??;
        Ok(TapReport {
            files: self.files.clone(),
            samples,
            lost_samples: self.lost_samples.load(Ordering::Relaxed),
        })
    }
}

type Writer = hound::WavWriter<BufWriter<File>>;

fn write_loop(
    mut rings: [HeapCons<f32>; 2],
    mut writers: [Writer; 2],
    stop: &AtomicBool,
    partial: &[PathBuf; 2],
    finals: &[PathBuf; 2],
) -> Result<u64> {
    let mut buf = vec![0.0f32; SAMPLE_RATE_HZ as usize / 10];
    let mut written = 0u64;
    loop {
        // read the flag before draining: whatever was pushed before it was set is written
        let stopping = stop.load(Ordering::Relaxed);
        for ((ring, w), path) in rings.iter_mut().zip(&mut writers).zip(partial) {
            while !ring.is_empty() {
                let n = ring.pop_slice(&mut buf);
                for &s in &buf[..n] {
                    w.write_sample(s).map_err(|e| io_err(path, e))?;
                }
            }
        }
        if stopping {
            break;
        }
        std::thread::sleep(WAKE);
    }
    for ((w, from), to) in writers.into_iter().zip(partial).zip(finals) {
        written = w.len() as u64;
        w.finalize().map_err(|e| io_err(from, e))?;
        std::fs::rename(from, to).map_err(|e| io_err(to, e))?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_writes_both_sides_in_lock_step_and_never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        let (tap, mut side) = Tap::start(d.path()).unwrap();
        for hop in 0..50 {
            let i: Vec<f32> = (0..480).map(|k| (hop * 480 + k) as f32).collect();
            let o: Vec<f32> = i.iter().map(|v| -v).collect();
            side.push(&i, &o);
        }
        let r = tap.finish().unwrap();
        assert_eq!((r.samples, r.lost_samples), (50 * 480, 0));
        let read = |p: &Path| -> Vec<f32> {
            hound::WavReader::open(p)
                .unwrap()
                .samples::<f32>()
                .map(|s| s.unwrap())
                .collect()
        };
        let (i, o) = (read(&r.files[0]), read(&r.files[1]));
        assert_eq!(i.len(), 24000);
        assert!(i.iter().enumerate().all(|(k, &v)| v == k as f32));
        assert!(o.iter().zip(&i).all(|(a, b)| *a == -*b));
        // no temporary file left; a second tap into the same folder is refused
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
        let err = Tap::start(d.path()).err().expect("refused").to_string();
        assert!(
            err.contains("input.wav") && err.contains("overwrite"),
            "{err}"
        );
    }

    #[test]
    fn a_tap_dropped_without_finish_still_puts_its_files_in_place() {
        let d = tempfile::tempdir().unwrap();
        let (tap, mut side) = Tap::start(d.path()).unwrap();
        side.push(&[0.25; 480], &[0.5; 480]);
        drop(tap);
        let done = d.path().join("output.wav");
        for _ in 0..200 {
            if done.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let r = hound::WavReader::open(&done).unwrap();
        assert_eq!(r.len(), 480);
    }

    #[test]
    fn tap_drops_a_hop_that_does_not_fit_whole_and_counts_it() {
        // rings nobody drains: a writer that cannot keep up
        let (input, _in_cons) = HeapRb::<f32>::new(1000).split();
        let (output, _out_cons) = HeapRb::<f32>::new(1200).split();
        let lost_samples = Arc::new(AtomicU64::new(0));
        let mut side = TapSide {
            input,
            output,
            lost_samples: lost_samples.clone(),
        };
        let hop = [0.5f32; 480];
        for _ in 0..3 {
            side.push(&hop, &hop);
        }
        // the third hop fits neither input ring: dropped on both sides, counted, not waited for
        assert_eq!(lost_samples.load(Ordering::Relaxed), 480);
        assert_eq!(side.input.occupied_len(), 960);
        assert_eq!(side.output.occupied_len(), 960);
    }
}
