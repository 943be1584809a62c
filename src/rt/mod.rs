//! Code that runs on the audio devices' callback threads.
//!
//! Rules of this room (Ross Bencina, "time waits for nothing"): a callback converts,
//! copies and counts. It never allocates, locks, logs, does I/O, sleeps, spins, blocks or
//! panics. Everything it touches was allocated before the stream started: one half of a
//! lock-free SPSC ring (`ringbuf`) and a few atomic counters. A shortfall on output is
//! filled with silence and counted; a full input ring drops the newest samples and counts
//! them. Stream errors are counted here and reported by an ordinary thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cpal::{FromSample, Sample};
use ringbuf::traits::{Consumer, Observer, Producer};
use ringbuf::{HeapCons, HeapProd};

/// Counters shared between the callbacks, the worker and the supervisor.
#[derive(Debug, Default)]
pub struct RtStats {
    /// capture samples dropped because the input ring was full
    pub input_dropped_samples: AtomicU64,
    /// playback samples filled with silence because the output ring was empty
    pub output_padded_samples: AtomicU64,
    /// times the output ring ran dry while playing (each followed by re-priming)
    pub output_underruns: AtomicU64,
    /// capture callbacks that dropped samples (over-runs)
    pub input_overruns: AtomicU64,
    /// errors reported by the audio backend's error callback
    pub stream_errors: AtomicU64,
    /// frames captured / played in total
    pub captured_frames: AtomicU64,
    pub played_frames: AtomicU64,
    /// output ring fill after the last playback callback, in samples
    pub output_fill_samples: AtomicU64,
    /// set by the error callback when the backend says the device or host is gone
    pub device_lost: std::sync::atomic::AtomicBool,
}

impl RtStats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Which input channel feeds the denoiser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputChannel {
    /// the mean of all channels
    Downmix,
    /// one channel, 0-based
    Index(usize),
}

/// The capture callback's state: converts device samples to mono f32 in [-1, 1] and
/// pushes them into the input ring.
pub struct CaptureSide {
    producer: HeapProd<f32>,
    channels: usize,
    select: InputChannel,
    stats: Arc<RtStats>,
}

impl CaptureSide {
    /// The device's channel count may change when a stream is rebuilt.
    pub fn set_channels(&mut self, channels: usize) {
        self.channels = channels.max(1);
    }

    pub fn new(
        producer: HeapProd<f32>,
        channels: usize,
        select: InputChannel,
        stats: Arc<RtStats>,
    ) -> Self {
        Self {
            producer,
            channels: channels.max(1),
            select,
            stats,
        }
    }

    /// The capture callback body: `data` is interleaved, `channels` per frame.
    pub fn on_input<T: Sample>(&mut self, data: &[T])
    where
        f32: FromSample<T>,
    {
        let n = self.channels;
        let mut dropped = 0u64;
        for frame in data.chunks_exact(n) {
            let x = match self.select {
                InputChannel::Index(i) if i < n => f32::from_sample(frame[i]),
                _ => frame.iter().map(|&s| f32::from_sample(s)).sum::<f32>() / n as f32,
            };
            if self.producer.try_push(x).is_err() {
                dropped += 1;
            }
        }
        self.stats
            .captured_frames
            .fetch_add((data.len() / n) as u64, Ordering::Relaxed);
        if dropped > 0 {
            self.stats
                .input_dropped_samples
                .fetch_add(dropped, Ordering::Relaxed);
            self.stats.input_overruns.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The playback callback's state: pops mono f32 from the output ring and writes it to
/// every channel of the device buffer.
///
/// It plays only once the ring holds `prime_samples` (the safety margin the latency
/// target buys), and after an under-run it waits for that margin again: one clean gap
/// instead of a stream of tiny ones, and the margin is restored however late the input
/// started (sound servers often start capture a few hundred ms after playback).
pub struct PlaybackSide {
    consumer: HeapCons<f32>,
    channels: usize,
    stats: Arc<RtStats>,
    prime_samples: usize,
    primed: bool,
    /// position in the fade-in after an under-run (FADE_IN_SAMPLES = no fade running)
    fade_pos: usize,
}

/// After an under-run the audio comes back with a 5 ms linear fade-in, not a click.
pub const FADE_IN_SAMPLES: usize = 240;

impl PlaybackSide {
    /// The device's channel count may change when a stream is rebuilt; playback waits for
    /// its margin again.
    pub fn set_channels(&mut self, channels: usize) {
        self.channels = channels.max(1);
        self.primed = self.prime_samples == 0;
    }

    pub fn new(
        consumer: HeapCons<f32>,
        channels: usize,
        stats: Arc<RtStats>,
        prime_samples: usize,
    ) -> Self {
        Self {
            consumer,
            channels: channels.max(1),
            stats,
            prime_samples,
            primed: prime_samples == 0,
            fade_pos: FADE_IN_SAMPLES,
        }
    }

    /// Samples waiting in the output ring.
    pub fn fill(&self) -> usize {
        self.consumer.occupied_len()
    }

    /// The playback callback body.
    pub fn on_output<T: Sample + FromSample<f32>>(&mut self, data: &mut [T]) {
        let n = self.channels;
        let mut padded = 0u64;
        let mut ran_dry = false;
        if !self.primed && self.consumer.occupied_len() >= self.prime_samples {
            self.primed = true;
        }
        for frame in data.chunks_exact_mut(n) {
            let popped = if self.primed {
                self.consumer.try_pop()
            } else {
                None
            };
            let x = match popped {
                Some(x) if self.fade_pos < FADE_IN_SAMPLES => {
                    self.fade_pos += 1;
                    x * self.fade_pos as f32 / FADE_IN_SAMPLES as f32
                }
                Some(x) => x,
                None => {
                    if self.primed {
                        // an under-run: wait for the full margin before playing again,
                        // then fade back in
                        self.primed = self.prime_samples == 0;
                        ran_dry = true;
                        self.fade_pos = 0;
                    }
                    padded += 1;
                    0.0
                }
            };
            let s = T::from_sample(x.clamp(-1.0, 1.0));
            for o in frame.iter_mut() {
                *o = s;
            }
        }
        self.stats
            .played_frames
            .fetch_add((data.len() / n) as u64, Ordering::Relaxed);
        if padded > 0 {
            self.stats
                .output_padded_samples
                .fetch_add(padded, Ordering::Relaxed);
        }
        if ran_dry {
            self.stats.output_underruns.fetch_add(1, Ordering::Relaxed);
        }
        self.stats
            .output_fill_samples
            .store(self.consumer.occupied_len() as u64, Ordering::Relaxed);
    }
}

/// The error callback body: count (and flag a lost device), never log here.
///
/// The one exception to "never block": a stream the supervisor has abandoned
/// (`retired`), because the backend could not close it. ALSA's pulse plugin, when the
/// sound server dies, leaves cpal's stream thread calling this callback in a tight loop
/// forever; parking that dead thread stops it from burning a core. No audio flows through
/// a retired stream, so nothing waits on it.
pub fn on_stream_error(
    stats: &RtStats,
    device_gone: bool,
    retired: &std::sync::atomic::AtomicBool,
) {
    if retired.load(Ordering::Relaxed) {
        loop {
            std::thread::park();
        }
    }
    stats.stream_errors.fetch_add(1, Ordering::Relaxed);
    if device_gone {
        stats.device_lost.store(true, Ordering::Relaxed);
    }
}

/// Holds a callback's state and hands it back through `tx` when the callback (the stream)
/// is dropped, so the supervisor can rebuild a stream around the same preallocated state.
/// The hand-back happens at teardown, never while audio runs.
pub struct ReturnOnDrop<T: Send> {
    inner: Option<T>,
    tx: crossbeam_channel::Sender<T>,
}

impl<T: Send> ReturnOnDrop<T> {
    pub fn new(inner: T, tx: crossbeam_channel::Sender<T>) -> Self {
        Self {
            inner: Some(inner),
            tx,
        }
    }

    /// The state; present until drop.
    pub fn get(&mut self) -> &mut T {
        // Constructed with Some and only emptied in drop, so this cannot fail.
        self.inner.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl<T: Send> Drop for ReturnOnDrop<T> {
    fn drop(&mut self) {
        if let Some(x) = self.inner.take() {
            let _ = self.tx.send(x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringbuf::HeapRb;
    use ringbuf::traits::Split;

    #[test]
    fn capture_downmixes_and_counts_overruns() {
        let (p, mut c) = HeapRb::<f32>::new(4).split();
        let stats = Arc::new(RtStats::default());
        let mut cap = CaptureSide::new(p, 2, InputChannel::Downmix, stats.clone());
        cap.on_input(&[
            0.5f32, -0.5, 1.0, 0.0, 0.2, 0.2, 0.0, 0.0, 0.1, 0.1, 0.3, 0.3,
        ]);
        let mut out = [0.0f32; 4];
        assert_eq!(c.pop_slice(&mut out), 4);
        assert_eq!(out, [0.0, 0.5, 0.2, 0.0]);
        assert_eq!(RtStats::get(&stats.input_dropped_samples), 2);
        assert_eq!(RtStats::get(&stats.input_overruns), 1);
    }

    #[test]
    fn capture_converts_integer_formats_exactly() {
        let (p, mut c) = HeapRb::<f32>::new(8).split();
        let stats = Arc::new(RtStats::default());
        let mut cap = CaptureSide::new(p, 1, InputChannel::Index(0), stats);
        cap.on_input(&[i16::MIN, 0i16, 16384]);
        assert_eq!(c.try_pop(), Some(-1.0));
        assert_eq!(c.try_pop(), Some(0.0));
        assert_eq!(c.try_pop(), Some(0.5));
    }

    #[test]
    fn playback_pads_with_silence_and_counts_underruns() {
        let (mut p, c) = HeapRb::<f32>::new(8).split();
        let stats = Arc::new(RtStats::default());
        let mut play = PlaybackSide::new(c, 2, stats.clone(), 0);
        p.push_slice(&[0.5, -0.25]);
        let mut buf = [7i16; 8];
        play.on_output(&mut buf);
        assert_eq!(buf, [16384, 16384, -8192, -8192, 0, 0, 0, 0]);
        assert_eq!(RtStats::get(&stats.output_padded_samples), 2);
        assert_eq!(RtStats::get(&stats.output_underruns), 1);
    }

    #[test]
    fn playback_waits_for_the_margin_before_playing_and_after_an_underrun() {
        let (mut p, c) = HeapRb::<f32>::new(64).split();
        let stats = Arc::new(RtStats::default());
        let mut play = PlaybackSide::new(c, 1, stats.clone(), 4);
        p.push_slice(&[0.5; 3]);
        let mut buf = [1.0f32; 2];
        play.on_output(&mut buf);
        assert_eq!(buf, [0.0, 0.0], "3 < 4 samples: still priming");
        assert_eq!(
            RtStats::get(&stats.output_underruns),
            0,
            "priming is not an under-run"
        );
        p.push_slice(&[0.25; 2]);
        let mut buf = [1.0f32; 6];
        play.on_output(&mut buf);
        assert_eq!(buf, [0.5, 0.5, 0.5, 0.25, 0.25, 0.0]);
        assert_eq!(RtStats::get(&stats.output_underruns), 1);
        p.push_slice(&[0.1; 3]);
        let mut buf = [1.0f32; 2];
        play.on_output(&mut buf);
        assert_eq!(buf, [0.0, 0.0], "re-priming after the under-run");
    }

    #[test]
    fn audio_fades_back_in_after_an_underrun() {
        let (mut p, c) = HeapRb::<f32>::new(4096).split();
        let stats = Arc::new(RtStats::default());
        let mut play = PlaybackSide::new(c, 1, stats, 0);
        let mut buf = [0.0f32; 8];
        play.on_output(&mut buf); // under-run
        p.push_slice(&[1.0; FADE_IN_SAMPLES + 8]);
        let mut buf = vec![0.0f32; FADE_IN_SAMPLES + 8];
        play.on_output(&mut buf);
        assert!((buf[0] - 1.0 / FADE_IN_SAMPLES as f32).abs() < 1e-6);
        assert!(
            buf.windows(2)
                .take(FADE_IN_SAMPLES - 1)
                .all(|w| w[1] > w[0]),
            "rising ramp"
        );
        assert!(buf[FADE_IN_SAMPLES..].iter().all(|&v| v == 1.0));
    }
}
