//! The denoise worker: an ordinary (non-callback) named thread that moves audio from the
//! input ring to the output ring one 10 ms hop at a time, through the `StreamDenoiser`.
//!
//! It may sleep (it polls the input ring every millisecond when no hop is ready); it does
//! not allocate per hop outside the model call. Control messages (attenuation, wet/dry,
//! bypass, stop) arrive on a crossbeam channel from ordinary threads; parameter changes
//! are ramped over one hop by the gain code, bypass crossfades over `RAMP_HOPS` hops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use ringbuf::traits::{Consumer, Observer, Producer};
use ringbuf::{HeapCons, HeapProd};

use crate::dsp::{GainParams, HOP_SIZE};
use crate::error::Result;
use crate::model::Model;
use crate::rate::{DriftController, LiveResampler};
use crate::stream::StreamDenoiser;
use crate::tap::TapSide;

/// Device rates and drift handling for a worker (all `None`/false: 48 kHz both ways).
#[derive(Clone, Copy, Debug, Default)]
pub struct RateConfig {
    /// capture device rate, if not 48 kHz
    pub input_hz: Option<u32>,
    /// playback device rate, if not 48 kHz
    pub output_hz: Option<u32>,
    /// trim the output rate to hold the output ring at `target_fill` samples
    /// (input and output are different devices with independent clocks)
    pub drift_target_fill: Option<usize>,
}

/// Hops over which bypass fades in or out (50 ms).
pub const RAMP_HOPS: usize = 5;

/// Messages from the supervisor (and the control socket) to the worker.
pub enum Control {
    SetAttenuationLimitDb(f32),
    SetWet(f32),
    SetPitchFilter(bool),
    Bypass(bool),
    /// a new model, crossfaded in over `RAMP_HOPS` hops (a reload that changed the model)
    SwapModel(Box<Model>),
    Stop,
}

/// Resolution and range of the hop-time histogram: 10 us buckets up to 5.12 ms (the
/// last bucket also holds everything slower).
pub const HOP_HIST_BUCKET_US: u64 = 10;
pub const HOP_HIST_BUCKETS: usize = 512;

/// What the worker publishes for status displays (all lock-free).
#[derive(Debug)]
pub struct WorkerStats {
    /// hop times, for percentiles
    pub hop_time_hist: [AtomicU64; HOP_HIST_BUCKETS],
    pub hops: AtomicU64,
    /// microseconds, whole hop (analysis + model + synthesis)
    pub hop_time_max_us: AtomicU64,
    /// speech probability of the last hop, in thousandths
    pub speech_prob_milli: AtomicU32,
    pub model_errors: AtomicU64,
    /// output samples dropped because the output ring was full
    pub output_dropped_samples: AtomicU64,
    pub running: AtomicBool,
    /// bumped on every loop of the worker thread, audio or not: the watchdog's proof of life
    pub heartbeat: AtomicU64,
}

impl Default for WorkerStats {
    fn default() -> Self {
        Self {
            hop_time_hist: std::array::from_fn(|_| AtomicU64::new(0)),
            hops: AtomicU64::new(0),
            hop_time_max_us: AtomicU64::new(0),
            speech_prob_milli: AtomicU32::new(0),
            model_errors: AtomicU64::new(0),
            output_dropped_samples: AtomicU64::new(0),
            running: AtomicBool::new(false),
            heartbeat: AtomicU64::new(0),
        }
    }
}

impl WorkerStats {
    /// The hop time (us) below which fraction `p` of the hops so far completed.
    pub fn hop_time_percentile_us(&self, p: f64) -> u64 {
        let counts: Vec<u64> = self
            .hop_time_hist
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let want = (total as f64 * p).ceil() as u64;
        let mut acc = 0;
        for (i, c) in counts.iter().enumerate() {
            acc += c;
            if acc >= want {
                return (i as u64 + 1) * HOP_HIST_BUCKET_US;
            }
        }
        HOP_HIST_BUCKETS as u64 * HOP_HIST_BUCKET_US
    }
}

pub struct Worker {
    model: Model,
    stream: StreamDenoiser,
    input: HeapCons<f32>,
    output: HeapProd<f32>,
    control: Receiver<Control>,
    stats: Arc<WorkerStats>,
    hop_in: Vec<f32>,
    hop_out: Vec<f32>,
    /// input delayed by the STFT latency, so bypass is time-aligned with the wet path
    dry_delay: Vec<f32>,
    dry: Vec<f32>,
    bypass: bool,
    /// 0 = fully wet, RAMP_HOPS = fully dry
    ramp: usize,
    in_rs: Option<LiveResampler>,
    out_rs: Option<LiveResampler>,
    drift: Option<DriftController>,
    out_hz: u32,
    /// the previous model while a new one fades in: (model, its stream, hops left)
    outgoing: Option<(Model, StreamDenoiser, usize)>,
    fade_buf: Vec<f32>,
    /// `run --tap`: each hop's input and output, copied into the tap's rings
    tap: Option<TapSide>,
}

impl Worker {
    pub fn new(
        model: Model,
        params: GainParams,
        input: HeapCons<f32>,
        output: HeapProd<f32>,
        control: Receiver<Control>,
        stats: Arc<WorkerStats>,
    ) -> Self {
        Self::with_rates(
            model,
            params,
            input,
            output,
            control,
            stats,
            RateConfig::default(),
        )
        .expect("48 kHz needs no resampler")
    }

    /// A worker for devices at other rates and/or with independent clocks.
    pub fn with_rates(
        model: Model,
        params: GainParams,
        input: HeapCons<f32>,
        output: HeapProd<f32>,
        control: Receiver<Control>,
        stats: Arc<WorkerStats>,
        rates: RateConfig,
    ) -> Result<Self, String> {
        let sr = crate::dsp::SAMPLE_RATE_HZ;
        let in_rs = match rates.input_hz {
            Some(hz) if hz != sr => Some(LiveResampler::new(hz, sr, true)?),
            _ => None,
        };
        let out_hz = rates.output_hz.unwrap_or(sr);
        let out_rs = if out_hz != sr || rates.drift_target_fill.is_some() {
            Some(LiveResampler::new(sr, out_hz, false)?)
        } else {
            None
        };
        let drift = rates.drift_target_fill.map(DriftController::new);
        let stream = StreamDenoiser::new(&model, params);
        let latency = stream.latency_samples();
        Ok(Self {
            model,
            stream,
            input,
            output,
            control,
            stats,
            hop_in: vec![0.0; HOP_SIZE],
            hop_out: vec![0.0; HOP_SIZE],
            dry_delay: vec![0.0; latency + HOP_SIZE],
            dry: vec![0.0; HOP_SIZE],
            bypass: false,
            ramp: 0,
            in_rs,
            out_rs,
            drift,
            out_hz,
            outgoing: None,
            fade_buf: vec![0.0; HOP_SIZE],
            tap: None,
        })
    }

    /// Record every hop's input and output from now on (see `tap`).
    pub fn set_tap(&mut self, tap: Option<TapSide>) {
        self.tap = tap;
    }

    /// Delay this worker adds, in samples (48 kHz): the STFT's latency plus the hop it
    /// waits for.
    pub fn latency_samples(&self) -> usize {
        let sr = crate::dsp::SAMPLE_RATE_HZ as usize;
        // resampler delays are in their output samples: the input side's are at 48 kHz
        let in_delay = self.in_rs.as_ref().map_or(0, |r| r.output_delay());
        let out_delay = self.out_rs.as_ref().map_or(0, |r| r.output_delay());
        self.stream.latency_samples() + HOP_SIZE + in_delay + out_delay * sr / self.out_rate_hz()
    }

    fn out_rate_hz(&self) -> usize {
        self.out_hz as usize
    }

    /// Enough input waiting for one hop?
    fn ready(&self) -> bool {
        let need = self.in_rs.as_ref().map_or(HOP_SIZE, |r| r.input_needed());
        self.input.occupied_len() >= need
    }

    fn apply(&mut self, c: Control) -> bool {
        match c {
            Control::SwapModel(m) => {
                let mut stream = StreamDenoiser::new(&m, self.stream.params);
                std::mem::swap(&mut stream, &mut self.stream);
                let old = std::mem::replace(&mut self.model, *m);
                self.outgoing = Some((old, stream, RAMP_HOPS));
            }
            Control::SetAttenuationLimitDb(db) => self.stream.params.attenuation_limit_db = db,
            Control::SetWet(w) => self.stream.params.wet = w,
            Control::SetPitchFilter(on) => self.stream.params.pitch_filter = on,
            Control::Bypass(b) => self.bypass = b,
            Control::Stop => return false,
        }
        true
    }

    /// Process every complete hop waiting in the input ring. Returns false on `Stop`.
    pub fn step(&mut self) -> Result<bool> {
        loop {
            match self.control.try_recv() {
                Ok(c) => {
                    if !self.apply(c) {
                        return Ok(false);
                    }
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return Ok(false),
            }
        }
        while self.ready() {
            match &mut self.in_rs {
                Some(r) => {
                    self.input.pop_slice(r.input_mut());
                    let y = r.process();
                    let n = y.len().min(HOP_SIZE);
                    self.hop_in[..n].copy_from_slice(&y[..n]);
                    self.hop_in[n..].fill(0.0);
                }
                None => {
                    self.input.pop_slice(&mut self.hop_in);
                }
            }
            let t = Instant::now();
            // dry path: the same delay as the wet path
            let lat = self.dry_delay.len() - HOP_SIZE;
            self.dry_delay[lat..].copy_from_slice(&self.hop_in);
            self.dry.copy_from_slice(&self.dry_delay[..HOP_SIZE]);
            self.dry_delay.copy_within(HOP_SIZE.., 0);
            match self
                .stream
                .process_hop(&mut self.model, &self.hop_in, &mut self.hop_out)
            {
                Ok(info) => {
                    self.stats
                        .speech_prob_milli
                        .store((info.speech_prob * 1000.0) as u32, Ordering::Relaxed);
                }
                Err(_) => {
                    // a failed model call must not stop the audio: pass the dry signal
                    self.stats.model_errors.fetch_add(1, Ordering::Relaxed);
                    self.hop_out.copy_from_slice(&self.dry);
                }
            }
            if let Some((m, st, left)) = &mut self.outgoing {
                // model swap: old model fades out while the new one (fresh state) fades in
                if st.process_hop(m, &self.hop_in, &mut self.fade_buf).is_err() {
                    self.fade_buf.copy_from_slice(&self.dry);
                }
                let from = *left as f32 / RAMP_HOPS as f32;
                let to = (*left - 1) as f32 / RAMP_HOPS as f32;
                for (i, (o, old)) in self.hop_out.iter_mut().zip(&self.fade_buf).enumerate() {
                    let a = from + (to - from) * i as f32 / HOP_SIZE as f32;
                    *o = (1.0 - a) * *o + a * old;
                }
                *left -= 1;
                if *left == 0 {
                    self.outgoing = None;
                }
            }
            let from = self.ramp as f32 / RAMP_HOPS as f32;
            if self.bypass && self.ramp < RAMP_HOPS {
                self.ramp += 1;
            } else if !self.bypass && self.ramp > 0 {
                self.ramp -= 1;
            }
            let to = self.ramp as f32 / RAMP_HOPS as f32;
            if from > 0.0 || to > 0.0 {
                for (i, (o, d)) in self.hop_out.iter_mut().zip(&self.dry).enumerate() {
                    let a = from + (to - from) * i as f32 / HOP_SIZE as f32;
                    *o = (1.0 - a) * *o + a * d;
                }
            }
            if let Some(tap) = &mut self.tap {
                tap.push(&self.hop_in, &self.hop_out);
            }
            let (pushed, wanted) = match &mut self.out_rs {
                Some(r) => {
                    if let Some(c) = &mut self.drift {
                        r.set_relative_ratio(c.update(self.output.occupied_len()));
                    }
                    r.input_mut().copy_from_slice(&self.hop_out);
                    let y = r.process();
                    (self.output.push_slice(y), y.len())
                }
                None => (self.output.push_slice(&self.hop_out), HOP_SIZE),
            };
            if pushed < wanted {
                self.stats
                    .output_dropped_samples
                    .fetch_add((wanted - pushed) as u64, Ordering::Relaxed);
            }
            let us = t.elapsed().as_micros() as u64;
            self.stats.hop_time_max_us.fetch_max(us, Ordering::Relaxed);
            let bucket = ((us / HOP_HIST_BUCKET_US) as usize).min(HOP_HIST_BUCKETS - 1);
            self.stats.hop_time_hist[bucket].fetch_add(1, Ordering::Relaxed);
            self.stats.hops.fetch_add(1, Ordering::Relaxed);
        }
        Ok(true)
    }

    /// The thread body: step until `Stop` or the control channel closes. Returns the model
    /// and the tap, so a rebuilt pipeline can reuse the loaded session and go on recording.
    pub fn run(mut self) -> (Model, Option<TapSide>) {
        self.stats.running.store(true, Ordering::Relaxed);
        loop {
            self.stats.heartbeat.fetch_add(1, Ordering::Relaxed);
            match self.step() {
                Ok(true) => {}
                _ => break,
            }
            if self.control.is_empty() && !self.ready() {
                // sleep about as long as the missing input takes to arrive (device rate
                // assumed near 48 kHz), between 0.5 and 5 ms: few wake-ups, little delay
                let need = self.in_rs.as_ref().map_or(HOP_SIZE, |r| r.input_needed());
                let missing = need.saturating_sub(self.input.occupied_len()) as u64;
                let us = (missing * 1_000_000 / crate::dsp::SAMPLE_RATE_HZ as u64).clamp(500, 5000);
                std::thread::sleep(Duration::from_micros(us));
            }
        }
        self.stats.running.store(false, Ordering::Relaxed);
        (self.model, self.tap)
    }
}
