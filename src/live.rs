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

use crossbeam_channel::{Receiver, Sender, unbounded};
use ringbuf::HeapRb;
use ringbuf::traits::Split;

use crate::audio::{self, Direction, virtual_mic::VirtualMic};
use crate::config::RunOptions;
use crate::control::{self, Info, Shared};
use crate::dsp::{HOP_SIZE, SAMPLE_RATE_HZ};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::rt::{CaptureSide, PlaybackSide, ReturnOnDrop, RtStats};
use crate::service::{self, Notifier, Priority};
use crate::tap::{Tap, TapSide};
use crate::worker::{Control, RateConfig, Worker, WorkerStats};
use std::sync::Mutex;

/// Ring capacity: one second each way (far more than any sane latency target).
const RING_SAMPLES: usize = SAMPLE_RATE_HZ as usize;

fn ms(samples: usize) -> f64 {
    samples as f64 * 1000.0 / SAMPLE_RATE_HZ as f64
}

/// Back-off between attempts to reopen lost devices: 0.5 s doubling to 5 s.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// No captured or played frame for this long while running = the device is gone (some
/// backends, like ALSA's pulse plugin when the server dies, never say so explicitly).
const STALL: Duration = Duration::from_secs(2);

/// The two streams, rebuilt around the same callback state after a device loss.
struct Streams {
    _input: cpal::Stream,
    _output: cpal::Stream,
    /// set when the streams are abandoned (see `rt::on_stream_error`)
    retired: Arc<AtomicBool>,
}

struct Endpoints {
    in_dev: cpal::Device,
    out_dev: cpal::Device,
    in_cfg: cpal::StreamConfig,
    out_cfg: cpal::StreamConfig,
    in_fmt: cpal::SampleFormat,
    out_fmt: cpal::SampleFormat,
}

fn find_endpoints(opts: &RunOptions) -> Result<Endpoints> {
    let in_dev = audio::find_device(Direction::Input, opts.input.as_deref())?;
    let out_dev = audio::find_device(Direction::Output, opts.output.as_deref())?;
    let (in_cfg, in_fmt) = audio::stream_config(&in_dev, Direction::Input, opts.buffer_frames)?;
    let (out_cfg, out_fmt) = audio::stream_config(&out_dev, Direction::Output, opts.buffer_frames)?;
    Ok(Endpoints {
        in_dev,
        out_dev,
        in_cfg,
        out_cfg,
        in_fmt,
        out_fmt,
    })
}

/// Build and start both streams around the callback state waiting in the channels.
fn open_streams(ep: &Endpoints, sides: &Sides, stats: &Arc<RtStats>) -> Result<Streams> {
    let lost = |what: &str| Error::Device {
        msg: format!("the {what} callback state did not come back"),
    };
    let mut cap = sides
        .1
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| lost("capture"))?;
    let mut play = sides
        .3
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| lost("playback"))?;
    cap.set_channels(ep.in_cfg.channels as usize);
    play.set_channels(ep.out_cfg.channels as usize);
    // from here on the state travels inside the callbacks and comes back when they drop
    let cap = ReturnOnDrop::new(cap, sides.0.clone());
    let play = ReturnOnDrop::new(play, sides.2.clone());
    let retired = Arc::new(AtomicBool::new(false));
    let output = audio::build_output(
        &ep.out_dev,
        &ep.out_cfg,
        ep.out_fmt,
        play,
        stats.clone(),
        retired.clone(),
    );
    let input = audio::build_input(
        &ep.in_dev,
        &ep.in_cfg,
        ep.in_fmt,
        cap,
        stats.clone(),
        retired.clone(),
    );
    let (input, output) = (input?, output?);
    input.play().map_err(|e| Error::Device {
        msg: format!("cannot start capture: {e}"),
    })?;
    output.play().map_err(|e| Error::Device {
        msg: format!("cannot start playback: {e}"),
    })?;
    stats.device_lost.store(false, Ordering::Relaxed);
    Ok(Streams {
        _input: input,
        _output: output,
        retired,
    })
}

/// Rings, worker thread and callback state: everything between the two streams.
struct Pipeline {
    ctl: Sender<Control>,
    worker: std::thread::JoinHandle<(Model, Option<TapSide>)>,
    sides: Sides,
    latency_samples: usize,
}

type Sides = (
    Sender<CaptureSide>,
    Receiver<CaptureSide>,
    Sender<PlaybackSide>,
    Receiver<PlaybackSide>,
);

fn build_pipeline(
    model: Model,
    tap: Option<TapSide>,
    opts: &RunOptions,
    ep: &Endpoints,
    stats: &Arc<RtStats>,
    wstats: &Arc<WorkerStats>,
    separate_clocks: bool,
) -> Result<Pipeline> {
    let (in_prod, in_cons) = HeapRb::<f32>::new(RING_SAMPLES).split();
    let (out_prod, out_cons) = HeapRb::<f32>::new(RING_SAMPLES).split();
    let (ctl, ctl_rx) = unbounded();
    let rates = RateConfig {
        input_hz: Some(ep.in_cfg.sample_rate),
        output_hz: Some(ep.out_cfg.sample_rate),
        drift_target_fill: separate_clocks.then_some(opts.prefill_samples + HOP_SIZE),
    };
    let mut worker = Worker::with_rates(
        model,
        opts.gain,
        in_cons,
        out_prod,
        ctl_rx,
        wstats.clone(),
        rates,
    )
    .map_err(|msg| Error::Device { msg })?;
    worker.set_tap(tap);
    let latency_samples = worker.latency_samples();
    let (cap_tx, cap_rx) = unbounded();
    let (play_tx, play_rx) = unbounded();
    let _ = cap_tx.send(CaptureSide::new(
        in_prod,
        ep.in_cfg.channels as usize,
        opts.input_channel,
        stats.clone(),
    ));
    let margin = opts.prefill_samples.min(RING_SAMPLES / 2);
    let _ = play_tx.send(PlaybackSide::new(
        out_cons,
        ep.out_cfg.channels as usize,
        stats.clone(),
        margin,
    ));
    let worker = std::thread::Builder::new()
        .name("denoised-worker".into())
        .spawn(move || worker.run())
        .map_err(|e| Error::Device {
            msg: format!("cannot start the worker thread: {e}"),
        })?;
    Ok(Pipeline {
        ctl,
        worker,
        sides: (cap_tx, cap_rx, play_tx, play_rx),
        latency_samples,
    })
}

/// Drop streams on a thread of their own: a backend can hang in teardown (ALSA's pulse
/// plugin deadlocks inside libpulse when the server dies). Returns whether they finished
/// dropping within `wait`.
fn drop_streams(streams: Streams, wait: Duration) -> bool {
    streams.retired.store(true, Ordering::Relaxed);
    let (tx, rx) = crossbeam_channel::bounded(1);
    let spawned = std::thread::Builder::new()
        .name("denoised-reaper".into())
        .spawn(move || {
            drop(streams);
            let _ = tx.send(());
        });
    spawned.is_ok() && rx.recv_timeout(wait).is_ok()
}

/// Run until `stop` is set (signals) or the duration passes. `reload` (SIGHUP or the
/// control socket) re-reads the configuration file, merged again with `args`.
pub fn run(
    opts: &RunOptions,
    args: &crate::cli::RunArgs,
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
) -> Result<()> {
    // the control socket first: it is also what stops a second instance
    let listener = control::bind()?;
    let notifier = Notifier::from_env();
    let mut mic = if opts.virtual_mic {
        Some(VirtualMic::create()?)
    } else {
        None
    };
    if mic.is_some() {
        service::log(
            Priority::Info,
            &format!(
                "created the virtual microphone \"Denoised microphone\" (source `{}`); pick it in your call app",
                audio::virtual_mic::SOURCE_NAME
            ),
        );
    }
    let model = Model::load(&opts.model_path, &opts.load)?;
    service::log(
        Priority::Info,
        &format!("model {} on {}", model.spec().name, model.provider()),
    );
    let ep = find_endpoints(opts)?;
    let stats = Arc::new(RtStats::default());
    let wstats = Arc::new(WorkerStats::default());
    let provider = model.provider().to_string();
    let model_name = model.spec().name.clone();
    let lookahead_frames = model.spec().lookahead_frames;
    // two devices have two clocks: the worker trims the output rate to hold the ring
    let separate_clocks =
        audio::device_name(&ep.in_dev) != audio::device_name(&ep.out_dev) || opts.virtual_mic;
    let (tap, tap_side) = match &opts.tap_dir {
        Some(dir) => {
            let (t, side) = Tap::start(dir)?;
            (Some(t), Some(side))
        }
        None => (None, None),
    };
    let mut pipe = build_pipeline(model, tap_side, opts, &ep, &stats, &wstats, separate_clocks)?;

    let out_name = if mic.is_some() {
        "Denoised microphone".to_string()
    } else {
        audio::device_name(&ep.out_dev)
    };
    service::log(
        Priority::Info,
        &format!(
            "{} ({} ch, {}, {} Hz) -> {out_name} ({} ch, {}, {} Hz){}",
            audio::device_name(&ep.in_dev),
            ep.in_cfg.channels,
            ep.in_fmt,
            ep.in_cfg.sample_rate,
            ep.out_cfg.channels,
            ep.out_fmt,
            ep.out_cfg.sample_rate,
            if separate_clocks {
                ", clock drift compensated"
            } else {
                ""
            }
        ),
    );
    let buffer_ms = opts
        .buffer_frames
        .map(|b| b as f64 * 1000.0 / SAMPLE_RATE_HZ as f64);
    service::log(
        Priority::Info,
        &format!(
            "latency budget: hop wait {:.0} ms + STFT and resampling {:.1} ms + output margin {:.0} ms + device buffers {} = {:.0} ms{}",
            ms(HOP_SIZE),
            ms(pipe.latency_samples - HOP_SIZE),
            ms(opts.prefill_samples),
            buffer_ms.map_or("(device default, not known)".to_string(), |b| format!(
                "2 x {b:.1} ms"
            )),
            ms(pipe.latency_samples + opts.prefill_samples) + buffer_ms.map_or(0.0, |b| 2.0 * b),
            if buffer_ms.is_none() {
                " + device buffers"
            } else {
                ""
            }
        ),
    );

    let shared = Arc::new(Shared {
        stats: stats.clone(),
        wstats: wstats.clone(),
        reload: reload.clone(),
        info: Mutex::new(Info {
            state: "starting".into(),
            input: audio::device_name(&ep.in_dev),
            output: out_name.clone(),
            provider,
            model: model_name,
            lookahead_frames,
            latency_ms: ms(pipe.latency_samples + opts.prefill_samples)
                + buffer_ms.map_or(0.0, |b| 2.0 * b),
            attenuation_limit_db: opts.gain.attenuation_limit_db,
            wet: opts.gain.wet,
            bypass: false,
            started: Instant::now(),
            ctl: Some(pipe.ctl.clone()),
        }),
    });
    let control_stop = Arc::new(AtomicBool::new(false));
    let control_thread = {
        let (shared, control_stop) = (shared.clone(), control_stop.clone());
        std::thread::Builder::new()
            .name("denoised-control".into())
            .spawn(move || control::serve(listener, shared, control_stop))
            .map_err(|e| Error::Device {
                msg: format!("cannot start the control thread: {e}"),
            })?
    };
    let set_state = |state: &str| {
        shared.info.lock().unwrap_or_else(|p| p.into_inner()).state = state.to_string();
        notifier.notify(&format!("STATUS={state}"));
    };

    // the first opening must work: a missing or busy device is an error at start
    let mut streams = Some(open_streams(&ep, &pipe.sides, &stats)?);
    let mut model_path = opts.model_path.clone();
    let mut ready = false;
    let mut last_heartbeat = (0u64, Instant::now());
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut last_errors = 0;
    let mut progress = (0u64, 0u64, Instant::now());
    let mut retry = RETRY_MIN;
    let mut next_try = Instant::now();
    let mut result = Ok(());
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if opts
            .duration_s
            .is_some_and(|d| started.elapsed().as_secs_f64() >= d)
            || pipe.worker.is_finished()
        {
            break;
        }
        if !ready && streams.is_some() && wstats.hops.load(Ordering::Relaxed) > 0 {
            // the model has run on real audio and the streams move: ready for systemd
            ready = true;
            set_state("running");
            notifier.notify("READY=1");
        }
        if let Some(every) = notifier.watchdog_every {
            let hb = wstats.heartbeat.load(Ordering::Relaxed);
            if last_heartbeat.1.elapsed() >= every && hb != last_heartbeat.0 {
                // only while the worker thread is alive and looping
                notifier.notify("WATCHDOG=1");
                last_heartbeat = (hb, Instant::now());
            }
        }
        if reload.swap(false, Ordering::Relaxed) {
            match apply_reload(opts, args, &shared, &mut model_path) {
                Ok(msg) => service::log(Priority::Info, &msg),
                Err(e) => service::log(
                    Priority::Error,
                    &format!("reload failed, keeping the running settings: {e}"),
                ),
            }
        }
        match streams.take() {
            Some(s) => {
                let now = (
                    RtStats::get(&stats.captured_frames),
                    RtStats::get(&stats.played_frames),
                );
                if now.0 != progress.0 && now.1 != progress.1 {
                    progress = (now.0, now.1, Instant::now());
                }
                let stalled = progress.2.elapsed() > STALL;
                if !(stats.device_lost.load(Ordering::Relaxed) || stalled) {
                    streams = Some(s);
                } else {
                    service::log(
                        Priority::Warning,
                        &format!(
                            "audio device lost ({}); waiting for device",
                            if stalled {
                                "no audio for 2 s"
                            } else {
                                "the backend reported it gone"
                            }
                        ),
                    );
                    if !drop_streams(s, Duration::from_secs(2)) {
                        // the old callbacks (and the ring halves inside them) are stuck in
                        // the backend: start over with fresh rings and the same model
                        let _ = pipe.ctl.send(Control::Stop);
                        let (model, tap_side) = pipe.worker.join().map_err(|_| Error::Device {
                            msg: "the worker thread panicked".into(),
                        })?;
                        pipe = build_pipeline(
                            model,
                            tap_side,
                            opts,
                            &ep,
                            &stats,
                            &wstats,
                            separate_clocks,
                        )?;
                        shared.info.lock().unwrap_or_else(|p| p.into_inner()).ctl =
                            Some(pipe.ctl.clone());
                    }
                    set_state("waiting for device");
                    next_try = Instant::now() + RETRY_MIN;
                    retry = RETRY_MIN;
                }
            }
            None if Instant::now() >= next_try => {
                let reopened = (|| -> Result<Streams> {
                    if let Some(m) = &mut mic {
                        // a restarted sound server has forgotten our modules
                        if !m.is_loaded()? {
                            m.forget();
                            *m = VirtualMic::create()?;
                            service::log(Priority::Info, "recreated the virtual microphone");
                        }
                    }
                    let ep2 = find_endpoints(opts)?;
                    if ep2.in_cfg.sample_rate != ep.in_cfg.sample_rate
                        || ep2.out_cfg.sample_rate != ep.out_cfg.sample_rate
                    {
                        return Err(Error::Device {
                            msg: "the device came back at another sample rate".into(),
                        });
                    }
                    open_streams(&ep2, &pipe.sides, &stats)
                })();
                match reopened {
                    Ok(s) => {
                        streams = Some(s);
                        progress = (0, 0, Instant::now());
                        service::log(Priority::Info, "audio device back; running");
                        set_state("running");
                    }
                    Err(e) => {
                        service::log(
                            Priority::Info,
                            &format!(
                                "still waiting for device ({e}); next try in {:.1} s",
                                retry.as_secs_f64()
                            ),
                        );
                        next_try = Instant::now() + retry;
                        retry = (retry * 2).min(RETRY_MAX);
                    }
                }
            }
            None => {}
        }
        if last_report.elapsed().as_secs_f64() >= opts.stats_every_s.unwrap_or(5.0) {
            last_report = Instant::now();
            let errors = RtStats::get(&stats.stream_errors);
            if errors > last_errors {
                // rate-limited: one line per interval, however many errors the backend sent
                service::log(
                    Priority::Warning,
                    &format!(
                        "{} audio stream errors in the last interval (audio continues)",
                        errors - last_errors
                    ),
                );
                last_errors = errors;
            }
            if opts.stats_every_s.is_some() {
                service::log(Priority::Info, &status_line(&stats, &wstats));
            }
        }
    }
    notifier.notify("STOPPING=1");
    set_state("stopping");
    let _ = pipe.ctl.send(Control::Stop);
    if let Some(s) = streams
        && !drop_streams(s, Duration::from_secs(1))
    {
        service::log(
            Priority::Warning,
            "the audio backend did not close its streams in time",
        );
    }
    let _ = pipe.worker.join();
    service::log(
        Priority::Info,
        &format!(
            "stopped after {:.1} s: {}",
            started.elapsed().as_secs_f64(),
            status_line(&stats, &wstats)
        ),
    );
    if let Some(t) = tap {
        match t.finish() {
            Ok(r) => service::log(
                Priority::Info,
                &format!(
                    "tap: {:.1} s in {} and {} ({} samples lost)",
                    r.samples as f64 / SAMPLE_RATE_HZ as f64,
                    r.files[0].display(),
                    r.files[1].display(),
                    r.lost_samples
                ),
            ),
            Err(e) => result = result.and(Err(e)),
        }
    }
    if let Some(m) = mic {
        if let Err(e) = m.remove() {
            result = Err(e);
        } else {
            service::log(Priority::Info, "removed the virtual microphone");
        }
    }
    control_stop.store(true, Ordering::Relaxed);
    let _ = control_thread.join();
    result
}

/// Re-read the configuration and apply what can change while running: attenuation
/// limit, wet/dry, the pitch filter and the model (crossfaded in by the worker). Device settings need a
/// restart; a changed one is reported.
fn apply_reload(
    opts: &RunOptions,
    args: &crate::cli::RunArgs,
    shared: &Shared,
    model_path: &mut std::path::PathBuf,
) -> Result<String> {
    let new = crate::config::run_options(args, 0)?;
    let ctl = shared
        .info
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .ctl
        .clone();
    let send = |c: Control| ctl.as_ref().is_some_and(|tx| tx.send(c).is_ok());
    send(Control::SetAttenuationLimitDb(
        new.gain.attenuation_limit_db,
    ));
    send(Control::SetWet(new.gain.wet));
    send(Control::SetPitchFilter(new.gain.pitch_filter));
    let mut msg = format!(
        "reloaded {}: attenuation limit {} dB, wet/dry {}, pitch filter {}",
        new.config_file
            .as_ref()
            .map_or("(no file)".to_string(), |p| p.display().to_string()),
        new.gain.attenuation_limit_db,
        new.gain.wet,
        if new.gain.pitch_filter { "on" } else { "off" }
    );
    {
        let mut i = shared.info.lock().unwrap_or_else(|p| p.into_inner());
        i.attenuation_limit_db = new.gain.attenuation_limit_db;
        i.wet = new.gain.wet;
    }
    let running_lookahead = shared
        .info
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .lookahead_frames;
    if new.model_path != *model_path {
        let m = Model::load(&new.model_path, &new.load)?;
        if m.spec().lookahead_frames != running_lookahead {
            // Its latency differs: the stream's delay lines, the dry path for bypass and
            // the latency everyone was told are sized at start, and a crossfade between
            // two delays would repeat or skip audio. Like a device change, it waits for a
            // restart (model_path stays, so every reload says so again).
            msg += &format!(
                "; model {} has {} frames of lookahead (the running one {running_lookahead}): \
                 a different latency, so it takes effect after a restart",
                new.model_path.display(),
                m.spec().lookahead_frames
            );
        } else {
            let name = m.spec().name.clone();
            send(Control::SwapModel(Box::new(m)));
            shared.info.lock().unwrap_or_else(|p| p.into_inner()).model = name.clone();
            msg += &format!(
                ", model {} ({name}) crossfaded in",
                new.model_path.display()
            );
            *model_path = new.model_path.clone();
        }
    }
    if new.input != opts.input || new.output != opts.output || new.virtual_mic != opts.virtual_mic {
        msg += "; device changes take effect after a restart";
    }
    Ok(msg)
}

/// One line of counters for logs and status.
pub fn status_line(s: &RtStats, w: &WorkerStats) -> String {
    format!(
        "hops {} | hop time p50 {} us p99 {} us max {} us | speech {:.2} | output ring {} samples | underruns {} ({} samples padded) | overruns {} ({} dropped) | stream errors {} | model errors {} | output ring overflow {} samples",
        w.hops.load(Ordering::Relaxed),
        w.hop_time_percentile_us(0.5),
        w.hop_time_percentile_us(0.99),
        w.hop_time_max_us.load(Ordering::Relaxed),
        w.speech_prob_milli.load(Ordering::Relaxed) as f32 / 1000.0,
        RtStats::get(&s.output_fill_samples),
        RtStats::get(&s.output_underruns),
        RtStats::get(&s.output_padded_samples),
        RtStats::get(&s.input_overruns),
        RtStats::get(&s.input_dropped_samples),
        RtStats::get(&s.stream_errors),
        w.model_errors.load(Ordering::Relaxed),
        w.output_dropped_samples.load(Ordering::Relaxed),
    )
}
