//! `denoised run`: the supervisor of the live pipeline. It builds everything up front
//! (model, rings, the worker, the streams), moves the ring halves into the callbacks and
//! the worker, prints the latency budget, then watches counters and signals until it is
//! told to stop. Data flow:
//!
//! ```text
//! mic --cpal callback (rt::CaptureSide)--> SPSC ring --worker thread (STFT, model, gains)-->
//!     SPSC ring --cpal callback (rt::PlaybackSide)--> speakers or the "Denoised microphone"
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cpal::traits::StreamTrait;
use crossbeam_channel::unbounded;
use ringbuf::HeapRb;
use ringbuf::traits::Split;

use crate::audio::{self, Direction, virtual_mic::VirtualMic};
use crate::config::RunOptions;
use crate::dsp::{HOP_SIZE, SAMPLE_RATE_HZ};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::rt::{CaptureSide, PlaybackSide, RtStats};
use crate::worker::{Control, RateConfig, Worker, WorkerStats};

/// Ring capacity: one second each way (far more than any sane latency target).
const RING_SAMPLES: usize = SAMPLE_RATE_HZ as usize;

fn ms(samples: usize) -> f64 {
    samples as f64 * 1000.0 / SAMPLE_RATE_HZ as f64
}

/// Run until `stop` is set (signals) or the duration passes.
pub fn run(opts: &RunOptions, stop: Arc<AtomicBool>) -> Result<()> {
    let mic = if opts.virtual_mic {
        Some(VirtualMic::create()?)
    } else {
        None
    };
    if mic.is_some() {
        eprintln!(
            "denoised: created the virtual microphone \"Denoised microphone\" (source `{}`); pick it in your call app",
            audio::virtual_mic::SOURCE_NAME
        );
    }
    let model = Model::load(&opts.model_path, &opts.load)?;
    eprintln!(
        "denoised: model {} on {}",
        model.spec().name,
        model.provider()
    );

    let in_dev = audio::find_device(Direction::Input, opts.input.as_deref())?;
    let out_dev = audio::find_device(Direction::Output, opts.output.as_deref())?;
    let (in_cfg, in_fmt) = audio::stream_config(&in_dev, Direction::Input, opts.buffer_frames)?;
    let (out_cfg, out_fmt) = audio::stream_config(&out_dev, Direction::Output, opts.buffer_frames)?;

    let stats = Arc::new(RtStats::default());
    let wstats = Arc::new(WorkerStats::default());
    let (in_prod, in_cons) = HeapRb::<f32>::new(RING_SAMPLES).split();
    let (out_prod, out_cons) = HeapRb::<f32>::new(RING_SAMPLES).split();
    let (ctl_tx, ctl_rx) = unbounded();
    // two devices have two clocks: let the worker trim the output rate to hold the ring
    let separate_clocks =
        audio::device_name(&in_dev) != audio::device_name(&out_dev) || opts.virtual_mic;
    let rates = RateConfig {
        input_hz: Some(in_cfg.sample_rate),
        output_hz: Some(out_cfg.sample_rate),
        drift_target_fill: separate_clocks.then_some(opts.prefill_samples + HOP_SIZE),
    };
    let worker = Worker::with_rates(
        model,
        opts.gain,
        in_cons,
        out_prod,
        ctl_rx,
        wstats.clone(),
        rates,
    )
    .map_err(|msg| Error::Device { msg })?;
    let worker_latency = worker.latency_samples();
    let capture = CaptureSide::new(
        in_prod,
        in_cfg.channels as usize,
        opts.input_channel,
        stats.clone(),
    );
    let playback = PlaybackSide::new(
        out_cons,
        out_cfg.channels as usize,
        stats.clone(),
        opts.prefill_samples.min(RING_SAMPLES / 2),
    );

    let in_stream = audio::build_input(&in_dev, &in_cfg, in_fmt, capture, stats.clone())?;
    let out_stream = audio::build_output(&out_dev, &out_cfg, out_fmt, playback, stats.clone())?;
    let worker_thread = std::thread::Builder::new()
        .name("denoised-worker".into())
        .spawn(move || worker.run())
        .map_err(|e| Error::Device {
            msg: format!("cannot start the worker thread: {e}"),
        })?;

    let buffer_ms = opts
        .buffer_frames
        .map(|b| b as f64 * 1000.0 / SAMPLE_RATE_HZ as f64);
    let out_name = if mic.is_some() {
        "Denoised microphone".to_string()
    } else {
        audio::device_name(&out_dev)
    };
    eprintln!(
        "denoised: {} ({} ch, {in_fmt}, {} Hz) -> {out_name} ({} ch, {out_fmt}, {} Hz){}",
        audio::device_name(&in_dev),
        in_cfg.channels,
        in_cfg.sample_rate,
        out_cfg.channels,
        out_cfg.sample_rate,
        if separate_clocks {
            ", clock drift compensated"
        } else {
            ""
        }
    );
    eprintln!(
        "denoised: latency budget: hop wait {:.0} ms + STFT and resampling {:.1} ms + output margin {:.0} ms + device buffers {} = {:.0} ms{}",
        ms(HOP_SIZE),
        ms(worker_latency - HOP_SIZE),
        ms(opts.prefill_samples),
        buffer_ms.map_or("(device default, not known)".to_string(), |b| format!(
            "2 x {b:.1} ms"
        )),
        ms(worker_latency + opts.prefill_samples) + buffer_ms.map_or(0.0, |b| 2.0 * b),
        if buffer_ms.is_none() {
            " + device buffers"
        } else {
            ""
        }
    );

    in_stream.play().map_err(|e| Error::Device {
        msg: format!("cannot start capture: {e}"),
    })?;
    out_stream.play().map_err(|e| Error::Device {
        msg: format!("cannot start playback: {e}"),
    })?;

    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut last_errors = 0;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if opts
            .duration_s
            .is_some_and(|d| started.elapsed().as_secs_f64() >= d)
        {
            break;
        }
        if worker_thread.is_finished() {
            break;
        }
        if last_report.elapsed().as_secs_f64() >= opts.stats_every_s.unwrap_or(5.0) {
            last_report = Instant::now();
            let errors = RtStats::get(&stats.stream_errors);
            if errors > last_errors {
                // rate-limited: one line per interval, however many errors the backend sent
                eprintln!(
                    "denoised: warning: {} audio stream errors in the last interval (audio continues)",
                    errors - last_errors
                );
                last_errors = errors;
            }
            if opts.stats_every_s.is_some() {
                eprintln!("denoised: {}", status_line(&stats, &wstats));
            }
        }
    }
    let _ = ctl_tx.send(Control::Stop);
    drop(in_stream);
    drop(out_stream);
    let _ = worker_thread.join();
    eprintln!(
        "denoised: stopped after {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        status_line(&stats, &wstats)
    );
    if let Some(m) = mic {
        m.remove()?;
        eprintln!("denoised: removed the virtual microphone");
    }
    Ok(())
}

/// One line of counters for logs and status.
pub fn status_line(s: &RtStats, w: &WorkerStats) -> String {
    format!(
        "hops {} | hop time last {} us max {} us | speech {:.2} | underruns {} ({} samples padded) | overruns {} ({} dropped) | stream errors {}",
        w.hops.load(Ordering::Relaxed),
        w.hop_time_last_us.load(Ordering::Relaxed),
        w.hop_time_max_us.load(Ordering::Relaxed),
        w.speech_prob_milli.load(Ordering::Relaxed) as f32 / 1000.0,
        RtStats::get(&s.output_underruns),
        RtStats::get(&s.output_padded_samples),
        RtStats::get(&s.input_overruns),
        RtStats::get(&s.input_dropped_samples),
        RtStats::get(&s.stream_errors),
    )
}
