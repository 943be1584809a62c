//! `denoised bench`: speed of the model and the DSP on generated audio.
//! Offline: one channel through `denoise_channel`, one intra-op thread, many frames per
//! call -> real-time factor. Streaming: `StreamDenoiser` one hop (T=1) at a time ->
//! per-hop time percentiles, whole hop and the model call alone. Paired (`--against B`):
//! the two models' streams take turns in this process, so that the machine's drift (on
//! this project's build VM the same file's call took 239 µs and 401 µs minutes apart) slows
//! both alike and the ratio of
//! their model calls can be trusted where two separate runs cannot.

use std::path::Path;
use std::time::Instant;

use crate::config::BenchOptions;
use crate::dsp::{GainParams, HOP_SIZE, SAMPLE_RATE_HZ};
use crate::error::Result;
use crate::model::Model;
use crate::offline::denoise_channel;
use crate::stream::StreamDenoiser;

/// Deterministic test audio: a gliding harmonic "voice" with a syllable envelope in
/// coloured noise at roughly 5 dB SNR.
pub fn generate_audio(samples: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
    };
    let sr = SAMPLE_RATE_HZ as f32;
    let (mut phase, mut lp) = (0.0f32, 0.0f32);
    (0..samples)
        .map(|n| {
            let t = n as f32 / sr;
            let f0 = 150.0 + 40.0 * (2.0 * std::f32::consts::PI * 0.7 * t).sin();
            phase += 2.0 * std::f32::consts::PI * f0 / sr;
            let env = (2.0 * std::f32::consts::PI * 3.0 * t).sin().max(0.0);
            let voice: f32 = (1..20)
                .map(|h| (phase * h as f32).sin() / h as f32)
                .sum::<f32>()
                * env;
            lp = 0.95 * lp + 0.05 * rnd();
            0.1 * voice + 0.3 * lp
        })
        .collect()
}

fn percentile(sorted_us: &[f64], p: f64) -> f64 {
    let i = ((sorted_us.len() - 1) as f64 * p).round() as usize;
    sorted_us[i]
}

/// Run the benchmark and print the figures.
pub fn run(opts: &BenchOptions) -> Result<()> {
    let t_load = Instant::now();
    let mut model = Model::load(&opts.model_path, &opts.load)?;
    let load_ms = t_load.elapsed().as_secs_f64() * 1e3;
    println!(
        "model     {} ({})",
        opts.model_path.display(),
        model.spec().name
    );
    println!(
        "provider  {} (1 intra-op thread), session created in {load_ms:.1} ms",
        model.provider()
    );

    let audio = generate_audio((opts.seconds * SAMPLE_RATE_HZ as f64) as usize, 42);
    let params = GainParams {
        pitch_filter: opts.pitch_filter,
        ..GainParams::default()
    };
    println!(
        "pitch filter {}",
        if params.pitch_filter { "on" } else { "off" }
    );
    match model.spec().deep_filter {
        Some(df) => println!("deep filter {} taps on bins 0..{}", df.order, df.bins),
        None => println!("deep filter none (gains only)"),
    }
    // warm-up, then the measured run
    denoise_channel(
        &mut model,
        &audio[..SAMPLE_RATE_HZ as usize],
        &params,
        2000,
        &mut |_| {},
    )?;
    let t0 = Instant::now();
    denoise_channel(&mut model, &audio, &params, 2000, &mut |_| {})?;
    let secs = t0.elapsed().as_secs_f64();
    let rtf = secs / opts.seconds;
    println!(
        "offline   {:.1} s of audio in {:.3} s: real-time factor {:.4} ({:.0}x faster than real time), 2000 frames per call",
        opts.seconds,
        secs,
        rtf,
        1.0 / rtf
    );

    let mut stream = StreamDenoiser::new(&model, params);
    // what the stream adds, plus the hop a live stream collects before it can process it
    let ms = |samples: usize| samples as f64 * 1000.0 / SAMPLE_RATE_HZ as f64;
    println!(
        "latency   {:.0} ms algorithmic: {:.0} ms stream (STFT, {} frames of model lookahead) + {:.0} ms collecting a hop live",
        ms(stream.latency_samples() + HOP_SIZE),
        ms(stream.latency_samples()),
        model.spec().lookahead_frames,
        ms(HOP_SIZE)
    );
    let mut out = vec![0.0f32; HOP_SIZE];
    let mut hop_us = Vec::with_capacity(opts.hops);
    let mut model_us = Vec::with_capacity(opts.hops);
    for (i, hop) in audio
        .chunks_exact(HOP_SIZE)
        .cycle()
        .take(opts.hops + 100)
        .enumerate()
    {
        let (h, m) = time_hop(&mut stream, &mut model, hop, &mut out)?;
        if i >= 100 {
            hop_us.push(h);
            model_us.push(m);
        }
    }
    hop_us.sort_by(f64::total_cmp);
    model_us.sort_by(f64::total_cmp);
    let hop_budget_us = HOP_SIZE as f64 / SAMPLE_RATE_HZ as f64 * 1e6;
    for (name, v) in [("hop", &hop_us), ("model", &model_us)] {
        println!(
            "streaming {name:<5} T=1 over {} hops: p50 {:.1} us, p99 {:.1} us, max {:.1} us ({:.2}% of the {:.0} us hop at p50)",
            v.len(),
            percentile(v, 0.5),
            percentile(v, 0.99),
            v[v.len() - 1],
            percentile(v, 0.5) / hop_budget_us * 100.0,
            hop_budget_us
        );
    }
    if let Some(b_path) = &opts.against {
        run_paired(opts, &mut model, b_path, &audio, params)?;
    }
    Ok(())
}

/// One streaming hop: (whole hop, model call alone) in microseconds.
fn time_hop(
    stream: &mut StreamDenoiser,
    model: &mut Model,
    hop: &[f32],
    out: &mut [f32],
) -> Result<(f64, f64)> {
    let t = Instant::now();
    stream.analyze(hop);
    let tm = Instant::now();
    stream.infer(model)?;
    let m = tm.elapsed();
    stream.synthesize(out);
    Ok((t.elapsed().as_secs_f64() * 1e6, m.as_secs_f64() * 1e6))
}

/// Blocks the ratio's interval is taken over.
const PAIRED_BLOCKS: usize = 10;

/// Model A (already loaded) and B take turns of `opts.turn_hops` hops, each with its own
/// stream, until both have `opts.hops` timed model calls; prints B's p50 over A's.
fn run_paired(
    opts: &BenchOptions,
    model_a: &mut Model,
    b_path: &Path,
    audio: &[f32],
    params: GainParams,
) -> Result<()> {
    let mut model_b = Model::load(b_path, &opts.load)?;
    let mut streams = [
        StreamDenoiser::new(model_a, params),
        StreamDenoiser::new(&model_b, params),
    ];
    // a turn's first hops find the other model's weights in the caches: not timed, unless
    // one-hop turns ask for exactly that
    let skip = if opts.turn_hops == 1 {
        0
    } else {
        (opts.turn_hops / 10).min(5)
    };
    let mut out = vec![0.0f32; HOP_SIZE];
    let mut times: [Vec<f64>; 2] = [Vec::with_capacity(opts.hops), Vec::with_capacity(opts.hops)];
    let mut hops = audio.chunks_exact(HOP_SIZE).cycle();
    // warm-up: both models' first calls (allocation, caches) are not timed
    for _ in 0..100 {
        let hop = hops.next().expect("cycle");
        time_hop(&mut streams[0], model_a, hop, &mut out)?;
        time_hop(&mut streams[1], &mut model_b, hop, &mut out)?;
    }
    let mut turn = 0usize;
    while times.iter().any(|t| t.len() < opts.hops) {
        // neither model always runs first
        let order = if turn.is_multiple_of(2) {
            [0, 1]
        } else {
            [1, 0]
        };
        for which in order {
            for k in 0..opts.turn_hops {
                let hop = hops.next().expect("cycle");
                let model = if which == 0 {
                    &mut *model_a
                } else {
                    &mut model_b
                };
                let (_, m) = time_hop(&mut streams[which], model, hop, &mut out)?;
                if k >= skip {
                    times[which].push(m);
                }
            }
        }
        turn += 1;
    }
    let [mut a_us, mut b_us] = times;
    a_us.truncate(opts.hops);
    b_us.truncate(opts.hops);
    let (ratio, half) = paired_ratio(&a_us, &b_us, PAIRED_BLOCKS);
    a_us.sort_by(f64::total_cmp);
    b_us.sort_by(f64::total_cmp);
    println!(
        "paired    B {} against A, turns of {} hop{}, {} model calls each: A p50 {:.1} us, B p50 {:.1} us",
        b_path.display(),
        opts.turn_hops,
        if opts.turn_hops == 1 { "" } else { "s" },
        opts.hops,
        percentile(&a_us, 0.5),
        percentile(&b_us, 0.5)
    );
    println!(
        "paired    B/A model p50 {ratio:.3} +- {half:.3} (95 %, mean over {PAIRED_BLOCKS} blocks of hops)"
    );
    Ok(())
}

/// B's median call time over A's in each of `blocks` consecutive blocks of paired hops:
/// their mean and the half-width of its 95 % interval (normal approximation).
fn paired_ratio(a_us: &[f64], b_us: &[f64], blocks: usize) -> (f64, f64) {
    assert!(blocks >= 2 && a_us.len() == b_us.len() && a_us.len() >= blocks);
    let median = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        percentile(&s, 0.5)
    };
    let n = a_us.len();
    let ratios: Vec<f64> = (0..blocks)
        .map(|k| {
            let (lo, hi) = (k * n / blocks, (k + 1) * n / blocks);
            median(&b_us[lo..hi]) / median(&a_us[lo..hi])
        })
        .collect();
    let mean = ratios.iter().sum::<f64>() / blocks as f64;
    let var = ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (blocks - 1) as f64;
    (mean, 1.96 * (var / blocks as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_ratio_of_a_model_twice_as_fast_is_one_half_with_no_spread() {
        // a drifting machine: A's time wanders, B always takes half of it
        let a: Vec<f64> = (0..200)
            .map(|i| 300.0 + (i as f64 * 0.1).sin() * 80.0)
            .collect();
        let b: Vec<f64> = a.iter().map(|x| x / 2.0).collect();
        let (r, half) = paired_ratio(&a, &b, 10);
        assert!((r - 0.5).abs() < 1e-12, "{r}");
        assert!(half < 1e-12, "{half}");
    }

    #[test]
    fn paired_ratio_interval_widens_with_the_spread_of_the_blocks() {
        let a = vec![100.0; 100];
        let b: Vec<f64> = (0..100)
            .map(|i| if i < 50 { 90.0 } else { 110.0 })
            .collect();
        let (r, half) = paired_ratio(&a, &b, 10);
        assert!((r - 1.0).abs() < 1e-12, "{r}");
        // five blocks at 0.9, five at 1.1: sd 0.105, half-width 1.96 * 0.105 / sqrt(10)
        assert!((half - 1.96 * (0.1f64 * 0.1 * 10.0 / 9.0).sqrt() / 10f64.sqrt()).abs() < 1e-9);
    }
}
