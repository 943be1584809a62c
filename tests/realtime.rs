//! Real-time rule, checked: the per-hop DSP (STFT analysis, gains, synthesis, and the
//! stream's pre/post-model steps), the audio callbacks and the tap's copy allocate nothing. `assert_no_alloc` aborts the test
//! binary if anything allocates inside the guarded closure. The model call itself is
//! exempt: ONNX Runtime allocates its outputs.

mod common;

use assert_no_alloc::{AllocDisabler, assert_no_alloc};
use common::*;
use denoised::dsp::{
    DeepFilter, DeepFilterShape, GainParams, HOP_SIZE, N_BINS, PitchFilter, Stft, apply_gain_stage,
};
use denoised::model::{LoadOptions, Model};
use denoised::stream::StreamDenoiser;

#[global_allocator]
static ALLOC: AllocDisabler = AllocDisabler;

#[test]
fn per_hop_dsp_does_not_allocate() {
    let mut stft = Stft::new();
    let mut pitch = PitchFilter::new();
    let mut deep = DeepFilter::new(Some(DeepFilterShape { bins: 96, order: 5 }));
    let mut spec = stft.make_spectrum();
    let gains = vec![0.5f32; N_BINS];
    let taps = noise(deep.coefs_per_frame(), 0.5, 3);
    let params = GainParams::default();
    let input = noise(HOP_SIZE * 20, 0.5, 1);
    let mut out = vec![0.0f32; HOP_SIZE];
    for (i, hop) in input.chunks_exact(HOP_SIZE).enumerate() {
        assert_no_alloc(|| {
            stft.analyze(hop, &mut spec);
            pitch.push_hop(hop);
            // every other hop with the pitch filter off: both branches of the gain stage
            let p = GainParams {
                pitch_filter: i % 2 == 0,
                ..params
            };
            apply_gain_stage(&mut spec, &gains, &taps, &p, &mut pitch, &mut deep);
            stft.synthesize(&mut spec, &mut out);
        });
    }
}

#[test]
fn stream_denoiser_hop_does_not_allocate_outside_the_model_call() {
    // tiny_gru: gains only; df_delay: gains and deep-filter taps; tiny_gru_la2: lookahead
    for name in ["tiny_gru", "df_delay", "tiny_gru_la2"] {
        let mut model = Model::load(&fixture_model(name), &LoadOptions::default()).unwrap();
        let mut s = StreamDenoiser::new(&model, GainParams::default());
        let input = noise(HOP_SIZE * 20, 0.5, 2);
        let mut out = vec![0.0f32; HOP_SIZE];
        for hop in input.chunks_exact(HOP_SIZE) {
            assert_no_alloc(|| s.analyze(hop));
            s.infer(&mut model).unwrap();
            assert_no_alloc(|| {
                s.synthesize(&mut out);
            });
        }
    }
}

#[test]
fn audio_callbacks_do_not_allocate() {
    use denoised::rt::{CaptureSide, InputChannel, PlaybackSide, RtStats};
    use ringbuf::HeapRb;
    use ringbuf::traits::Split;
    use std::sync::Arc;
    let (p, c) = HeapRb::<f32>::new(4096).split();
    let stats = Arc::new(RtStats::default());
    let mut cap = CaptureSide::new(p, 2, InputChannel::Downmix, stats.clone());
    let mut play = PlaybackSide::new(c, 2, stats.clone(), 256);
    let block_i16: Vec<i16> = (0..1024).map(|i| (i * 37 % 2000) as i16).collect();
    let mut out_f32 = vec![0.0f32; 1024];
    let mut out_u8 = vec![0u8; 512];
    for _ in 0..20 {
        assert_no_alloc(|| {
            cap.on_input(&block_i16); // converts, downmixes, pushes (and overruns when full)
            play.on_output(&mut out_f32); // pops, fans out to channels
            play.on_output(&mut out_u8); // and under-runs, pads, re-primes, fades
        });
    }
    assert!(RtStats::get(&stats.played_frames) > 0);
}

#[test]
fn tap_push_does_not_allocate_when_it_fits_or_drops() {
    use denoised::tap::Tap;
    let d = tempfile::tempdir().unwrap();
    let (tap, mut side) = Tap::start(d.path()).unwrap();
    let hop = noise(HOP_SIZE, 0.5, 4);
    // 1100 hops are more than the tap's 10 s rings: unless the writer keeps up, the last
    // pushes take the dropping branch, which must not allocate or wait either
    for _ in 0..1100 {
        assert_no_alloc(|| side.push(&hop, &hop));
    }
    let r = tap.finish().unwrap();
    assert_eq!(r.samples + r.lost_samples, 1100 * HOP_SIZE as u64);
}
