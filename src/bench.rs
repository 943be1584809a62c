//! `denoised bench`: speed of the model and the DSP on generated audio.
//! Offline: one channel through `denoise_channel`, one intra-op thread, many frames per
//! call -> real-time factor. Streaming: `StreamDenoiser` one hop (T=1) at a time ->
//! per-hop time percentiles, whole hop and the model call alone.

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
        let t = Instant::now();
        stream.analyze(hop);
        let tm = Instant::now();
        stream.infer(&mut model)?;
        let m = tm.elapsed();
        stream.synthesize(&mut out);
        let h = t.elapsed();
        if i >= 100 {
            hop_us.push(h.as_secs_f64() * 1e6);
            model_us.push(m.as_secs_f64() * 1e6);
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
    Ok(())
}
