//! The model runtime against the contract: streaming T=1 with carried state equals one
//! batch call; the hop-by-hop stream equals offline cleaning; chunk size does not matter.

mod common;

use common::*;
use denoised::dsp::{GainParams, HOP_SIZE};
use denoised::model::{LoadOptions, Model};
use denoised::offline::denoise_channel;
use denoised::stream::StreamDenoiser;

fn load(name: &str) -> Model {
    Model::load(&fixture_model(name), &LoadOptions::default()).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A test signal loud enough to move the tiny GRU's state around.
fn input(n: usize) -> Vec<f32> {
    signal(n, 48000, 0)
        .iter()
        .zip(noise(n, 0.3, 5))
        .map(|(a, b)| a + b)
        .collect()
}

#[test]
fn streaming_t1_equals_batch_within_1e4() {
    let mut model = load("tiny_gru");
    let x = input(48000 * 2);
    let p = GainParams {
        attenuation_limit_db: 100.0,
        wet: 1.0,
        pitch_filter: false,
    };
    let (batch, _) = denoise_channel(&mut model, &x, &p, 100_000, &mut |_| {}).unwrap();
    let (stream, _) = denoise_channel(&mut model, &x, &p, 1, &mut |_| {}).unwrap();
    let (chunked, _) = denoise_channel(&mut model, &x, &p, 37, &mut |_| {}).unwrap();
    assert!(
        max_abs_diff(&batch, &stream) <= 1e-4,
        "{}",
        max_abs_diff(&batch, &stream)
    );
    assert!(max_abs_diff(&batch, &chunked) <= 1e-4);
    // and the model really does something that depends on its state
    let identity = max_abs_diff(&batch, &x);
    assert!(
        identity > 1e-2,
        "tiny GRU should change the signal ({identity})"
    );
}

/// Max difference between the hop-by-hop stream and offline cleaning in chunks of
/// `frames_per_call`, the stream's latency taken off.
fn stream_vs_offline(model: &mut Model, x: &[f32], p: GainParams, frames_per_call: usize) -> f32 {
    let (offline, _) = denoise_channel(model, x, &p, frames_per_call, &mut |_| {}).unwrap();
    let mut s = StreamDenoiser::new(model, p);
    let d = s.latency_samples();
    let mut live = vec![0.0; x.len()];
    for (i, o) in x
        .chunks_exact(HOP_SIZE)
        .zip(live.chunks_exact_mut(HOP_SIZE))
    {
        s.process_hop(model, i, o).unwrap();
    }
    max_abs_diff(&live[d..], &offline[..x.len() - d])
}

#[test]
fn stream_denoiser_equals_offline_after_latency() {
    let mut model = load("tiny_gru");
    let err = stream_vs_offline(&mut model, &input(48000), GainParams::default(), 500);
    assert!(err <= 1e-4, "live vs offline {err}");
}

#[test]
fn deep_filter_model_streams_like_offline_across_chunk_boundaries() {
    // the taps reach 4 frames back: a chunked offline call must carry that history over its
    // chunk boundaries exactly as the hop-by-hop stream does
    let mut model = load("df_delay");
    let shape = model
        .spec()
        .deep_filter
        .expect("df_delay declares df_coefs");
    assert_eq!((shape.bins, shape.order), (96, 5));
    let p = GainParams {
        attenuation_limit_db: 100.0,
        ..GainParams::default()
    };
    let err = stream_vs_offline(&mut model, &input(48000), p, 7);
    assert!(err <= 1e-5, "live vs offline {err}");
}

#[test]
fn deep_filter_unit_tap_delays_the_low_band_by_one_hop() {
    // df_delay: gains 1, taps -1 on this frame and +1 one frame back on bins 0..96
    // (0-4.75 kHz): a 1 kHz tone comes out one hop (480 samples) late, a 12 kHz tone as it
    // went in.
    let mut model = load("df_delay");
    let tone = |hz: f32, n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * hz * i as f32 / 48000.0).sin())
            .collect()
    };
    let n = 48000;
    let p = GainParams {
        attenuation_limit_db: 120.0,
        wet: 1.0,
        pitch_filter: false,
    };
    let low = tone(1000.0, n);
    let (y, stats) = denoise_channel(&mut model, &low, &p, 64, &mut |_| {}).unwrap();
    assert_eq!(stats.nonfinite_gains, 0);
    let steady = 4800..n - 4800;
    let err = max_abs_diff(
        &y[steady.clone()],
        &low[steady.start - HOP_SIZE..steady.end - HOP_SIZE],
    );
    assert!(
        err < 1e-3,
        "1 kHz tone: output vs input one hop earlier {err}"
    );
    let high = tone(12000.0, n);
    let (y, _) = denoise_channel(&mut model, &high, &p, 64, &mut |_| {}).unwrap();
    let err = max_abs_diff(&y[steady.clone()], &high[steady]);
    assert!(
        err < 1e-3,
        "12 kHz tone above the filtered bins: output vs input {err}"
    );
}

#[test]
fn lookahead_model_streams_like_offline_and_reports_its_delay() {
    // tiny_gru_la2: the tiny GRU declaring 2 frames of lookahead. The stream's delay grows
    // by two hops, and offline cleaning (any chunking) still equals the stream with that
    // delay taken off, the pitch filter on as by default.
    let mut model = load("tiny_gru_la2");
    assert_eq!(model.spec().lookahead_frames, 2);
    let plain = StreamDenoiser::new(&load("tiny_gru"), GainParams::default());
    let s = StreamDenoiser::new(&model, GainParams::default());
    assert_eq!(s.latency_samples(), plain.latency_samples() + 2 * HOP_SIZE);
    for frames_per_call in [1, 7, 500] {
        let err = stream_vs_offline(
            &mut model,
            &input(48000),
            GainParams::default(),
            frames_per_call,
        );
        assert!(
            err <= 1e-4,
            "chunks of {frames_per_call}: live vs offline {err}"
        );
    }
}

#[test]
fn lookahead_gains_land_on_the_frame_lookahead_hops_back() {
    // gate / gate_la2: gains 1 on a frame with any energy, else 0. A tone burst through the
    // gate without lookahead comes out whole. With 2 frames of lookahead each frame gets
    // the gate of the frame two hops later: the burst's start is kept (the frames after it
    // are loud), its last hop of input falls in the two frames whose gates look past the
    // end, and goes (the aligned output is zero there), while the middle is untouched.
    let (start, end) = (20 * HOP_SIZE, 60 * HOP_SIZE);
    let x: Vec<f32> = (0..48000)
        .map(|i| {
            if (start..end).contains(&i) {
                0.5 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 48000.0).sin()
            } else {
                0.0
            }
        })
        .collect();
    let p = GainParams {
        attenuation_limit_db: 120.0,
        wet: 1.0,
        pitch_filter: false,
    };
    let energy = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>();
    let (whole, _) = denoise_channel(&mut load("gate"), &x, &p, 64, &mut |_| {}).unwrap();
    assert!(
        max_abs_diff(&whole, &x) < 1e-4,
        "{}",
        max_abs_diff(&whole, &x)
    );
    let (y, _) = denoise_channel(&mut load("gate_la2"), &x, &p, 64, &mut |_| {}).unwrap();
    let last_hop = end - HOP_SIZE..end;
    assert!(
        energy(&y[last_hop.clone()]) < 1e-6 * energy(&x[last_hop.clone()]),
        "the burst's last hop should be gone: {} of {}",
        energy(&y[last_hop.clone()]),
        energy(&x[last_hop])
    );
    let middle = start..end - 2 * HOP_SIZE;
    let first_hop = start..start + HOP_SIZE;
    assert!(max_abs_diff(&y[middle.clone()], &x[middle]) < 1e-4);
    assert!(max_abs_diff(&y[first_hop.clone()], &x[first_hop]) < 1e-4);
}

#[test]
fn pitch_filter_switched_on_mid_stream_matches_offline_with_it_on() {
    // The stream feeds the filter's history while it is off, so switching it on (a config
    // reload) gives at once what a stream that always had it on gives.
    let mut model = load("tiny_gru");
    let x = input(48000);
    let on = GainParams::default();
    assert!(on.pitch_filter, "the filter is on by default");
    let off = GainParams {
        pitch_filter: false,
        ..on
    };
    let (with, _) = denoise_channel(&mut model, &x, &on, 500, &mut |_| {}).unwrap();
    let (without, _) = denoise_channel(&mut model, &x, &off, 500, &mut |_| {}).unwrap();
    assert!(
        max_abs_diff(&with, &without) > 1e-3,
        "the filter changes the output"
    );
    let mut s = StreamDenoiser::new(&model, off);
    let d = s.latency_samples();
    let switch_hop = 40;
    let mut live = vec![0.0; x.len()];
    for (h, (i, o)) in x
        .chunks_exact(HOP_SIZE)
        .zip(live.chunks_exact_mut(HOP_SIZE))
        .enumerate()
    {
        if h == switch_hop {
            s.params.pitch_filter = true;
        }
        s.process_hop(&mut model, i, o).unwrap();
    }
    // synthesis overlaps two hops: the first hop after the switch still mixes one unfiltered frame
    let from = (switch_hop + 1) * HOP_SIZE;
    let err = max_abs_diff(&live[from..], &with[from - d..x.len() - d]);
    assert!(err <= 1e-4, "switched on vs always on {err}");
    let before = max_abs_diff(
        &live[d..switch_hop * HOP_SIZE],
        &without[..switch_hop * HOP_SIZE - d],
    );
    assert!(before <= 1e-4, "before the switch vs always off {before}");
}

#[test]
fn state_is_per_stream_and_resettable() {
    let mut model = load("tiny_gru");
    let x = input(HOP_SIZE * 50);
    let p = GainParams::default();
    let mut a = StreamDenoiser::new(&model, p);
    let mut out_a = vec![0.0; x.len()];
    for (i, o) in x
        .chunks_exact(HOP_SIZE)
        .zip(out_a.chunks_exact_mut(HOP_SIZE))
    {
        a.process_hop(&mut model, i, o).unwrap();
    }
    a.reset();
    let mut again = vec![0.0; x.len()];
    for (i, o) in x
        .chunks_exact(HOP_SIZE)
        .zip(again.chunks_exact_mut(HOP_SIZE))
    {
        a.process_hop(&mut model, i, o).unwrap();
    }
    assert_eq!(out_a, again, "after reset() a stream starts from scratch");
}

#[test]
fn shipped_model_streaming_equals_batch_if_present() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/denoiser.onnx");
    if !path.exists() {
        eprintln!("models/denoiser.onnx not present; skipped");
        return;
    }
    let mut model = Model::load(&path, &LoadOptions::default()).unwrap();
    assert!(model.spec().has_speech_prob && model.spec().has_uncertainty);
    let x = input(48000);
    let p = GainParams::default();
    let (batch, _) = denoise_channel(&mut model, &x, &p, 100_000, &mut |_| {}).unwrap();
    let (stream, _) = denoise_channel(&mut model, &x, &p, 1, &mut |_| {}).unwrap();
    assert!(
        max_abs_diff(&batch, &stream) <= 1e-4,
        "{}",
        max_abs_diff(&batch, &stream)
    );
}
