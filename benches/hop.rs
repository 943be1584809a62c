//! Criterion benches: one STFT round trip, one pitch-filter hop (lag search and filter), one
//! deep-filter hop (96 bins, 5 taps), one model call (T=1) and one whole worker hop (analysis, model, pitch filter, gains,
//! synthesis) on the shipped model, or on the tiny GRU fixture
//! when the shipped model is absent. Construction stays outside the timed loops; one hop
//! is 10 ms of audio, so time per iteration / 10 ms is the real-time factor.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use denoised::dsp::{DeepFilter, DeepFilterShape, GainParams, HOP_SIZE, N_BINS, PitchFilter, Stft};
use denoised::model::{LoadOptions, Model};
use denoised::stream::StreamDenoiser;

fn model_path() -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = root.join("models/denoiser.onnx");
    if shipped.exists() {
        shipped
    } else {
        root.join("tests/fixtures/models/tiny_gru.onnx")
    }
}

fn input() -> Vec<f32> {
    denoised::bench::generate_audio(HOP_SIZE * 100, 3)
}

fn benches(c: &mut Criterion) {
    let x = input();
    let mut stft = Stft::new();
    let mut spec = stft.make_spectrum();
    let mut out = vec![0.0f32; HOP_SIZE];
    let mut i = 0;
    c.bench_function("stft_round_trip_hop", |b| {
        b.iter(|| {
            let hop = &x[(i % 100) * HOP_SIZE..(i % 100 + 1) * HOP_SIZE];
            i += 1;
            stft.analyze(black_box(hop), &mut spec);
            stft.synthesize(&mut spec, &mut out);
            black_box(&out);
        })
    });

    let mut pitch = PitchFilter::new();
    let gains = vec![0.5f32; N_BINS];
    let mut k = 0;
    c.bench_function("pitch_filter_hop", |b| {
        b.iter(|| {
            let hop = &x[(k % 100) * HOP_SIZE..(k % 100 + 1) * HOP_SIZE];
            k += 1;
            black_box(pitch.process(black_box(hop), &spec, &gains, 0.03));
        })
    });

    // the deep filter of a model that has one (96 bins, 5 taps, as train.py --deep-filter)
    let mut deep = DeepFilter::new(Some(DeepFilterShape { bins: 96, order: 5 }));
    let taps = denoised::bench::generate_audio(deep.coefs_per_frame(), 5);
    let mut filtered = spec.clone();
    c.bench_function("deep_filter_hop", |b| {
        b.iter(|| {
            deep.push(black_box(&spec));
            black_box(deep.apply(
                &mut filtered,
                black_box(&taps),
                &gains,
                &GainParams::default(),
            ));
        })
    });

    let path = model_path();
    let mut model = Model::load(&path, &LoadOptions::default()).expect("load model");
    let mut s = StreamDenoiser::new(&model, GainParams::default());
    s.analyze(&x[..HOP_SIZE]);
    c.bench_function("model_call_t1", |b| b.iter(|| s.infer(&mut model).unwrap()));

    let mut j = 0;
    c.bench_function("worker_hop", |b| {
        b.iter(|| {
            let hop = &x[(j % 100) * HOP_SIZE..(j % 100 + 1) * HOP_SIZE];
            j += 1;
            black_box(s.process_hop(&mut model, black_box(hop), &mut out).unwrap());
        })
    });
}

criterion_group!(hop, benches);
criterion_main!(hop);
