#!/usr/bin/env python3
"""Export a trained checkpoint to ONNX in the denoised model contract (models/README.md)
and check parity: PyTorch vs ONNX Runtime batch vs ONNX Runtime streaming (T=1).

  python export.py --ckpt runs/v1/last.pt --out ../denoiser.onnx
"""
import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

import bandnet
from vae import BINS, HOP, N_FFT, SR

HERE = Path(__file__).resolve().parent
STATE_NAMES = ["conv1", "conv2", "enc_gru", "dec_gru"]


class Exported(torch.nn.Module):
    """Contract wrapper: named state tensors in and out, batch fixed to 1."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, spec, *states):
        gains, prob, unc, _, _, nxt, df = self.m(spec, *states)
        return (gains, prob, unc) + ((df,) if df is not None else ()) + tuple(nxt)


def state_names(model):
    if isinstance(model, bandnet.BandVae):  # it names its own
        return model.state_names()
    return STATE_NAMES + (["noise_floor"] if model.noise_floor else []) + (["phase_prev"] if model.phase else []) \
        + (["dec2_gru"] if model.dec_layers == 2 else [])


def export(model, out_path, meta):
    model.eval()
    w = Exported(model)
    T = 7
    spec = torch.randn(1, T, BINS, 2)
    states = model.initial_state(1)
    in_names = ["spec"] + [f"state_in_{n}" for n in state_names(model)]
    heads = ["gains", "speech_prob", "uncertainty"] + (["df_coefs"] if model.deep_filter else [])
    out_names = heads + [f"state_out_{n}" for n in state_names(model)]
    tmp = Path(str(out_path) + ".tmp")
    torch.onnx.export(w, (spec, *states), str(tmp), input_names=in_names, output_names=out_names,
                      dynamic_axes={"spec": {1: "T"}, "gains": {1: "T"}, "speech_prob": {1: "T"},
                                    "uncertainty": {1: "T"}, "df_coefs": {1: "T"}},
                      opset_version=17, dynamo=False)
    m = onnx.load(str(tmp))
    # the exporter leaves symbolic dims on some state outputs (slices over time): pin them
    # to the state inputs' fixed shapes, as the contract requires
    in_shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in m.graph.input}
    for o in m.graph.output:
        if o.name.startswith("state_out_"):
            dims = in_shapes["state_in_" + o.name[len("state_out_"):]]
            for d, v in zip(o.type.tensor_type.shape.dim, dims):
                d.Clear()
                d.dim_value = v
        else:  # the heads are [1, T, ...]; a model that folds time into the batch (bandnet) leaves
            # the exporter naming their first dim after T
            d0, d1 = o.type.tensor_type.shape.dim[:2]
            d0.Clear()
            d0.dim_value = 1
            d1.Clear()
            d1.dim_param = "T"
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, str(v)
    m.producer_name = "denoised/models/train/export.py"
    onnx.checker.check_model(m)
    onnx.save(m, str(tmp))
    tmp.replace(out_path)


def contract_meta(extra=None):
    meta = {
        "denoised.contract": "1",
        "sample_rate_hz": SR,
        "fft_size": N_FFT,
        "hop_size": HOP,
        "window": "sqrt-hann",
        "lookahead_frames": 0,
        "bins": BINS,
        "output": "gains",
    }
    meta.update(extra or {})
    return meta


def parity(model, path, frames=200, seed=0):
    """Returns max abs differences (torch vs ort batch, ort batch vs ort streaming)."""
    rng = np.random.default_rng(seed)
    spec = (rng.standard_normal((1, frames, BINS, 2)) * rng.uniform(0.01, 30)).astype(np.float32)
    states = [s.numpy() for s in model.initial_state(1)]
    with torch.no_grad():
        out = model(torch.from_numpy(spec), *map(torch.from_numpy, states))
    # gains, and the deep-filter taps flattened beside them when the model has them
    flat = lambda *xs: np.concatenate([x.reshape(-1) for x in xs])  # noqa: E731
    g_t = flat(out[0].numpy(), *([out[6].numpy()] if model.deep_filter else []))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    heads = ["gains"] + (["df_coefs"] if model.deep_filter else [])
    g_b = flat(*sess.run(heads, dict(zip(names, [spec] + states))))
    n_heads = len([o for o in sess.get_outputs() if not o.name.startswith("state_out_")])
    st = states
    g_s = [[] for _ in heads]
    for t in range(frames):
        outs = sess.run(None, dict(zip(names, [spec[:, t : t + 1]] + st)))
        g_s[0].append(outs[0])
        if model.deep_filter:
            g_s[1].append(outs[3])
        st = outs[n_heads:]
    g_s = flat(*[np.concatenate(x, axis=1) for x in g_s])
    return float(np.abs(g_t - g_b).max()), float(np.abs(g_b - g_s).max())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=str(HERE / "runs" / "v1" / "last.pt"))
    ap.add_argument("--out", default=str(HERE.parent / "denoiser.onnx"))
    ap.add_argument("--name", default="denoised-vae")
    args = ap.parse_args()
    st = torch.load(args.ckpt, map_location="cpu")
    model = bandnet.for_weights(st["model"])
    model.load_state_dict(st["model"])
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    meta = contract_meta({
        "name": args.name,
        "training_steps": st["step"],
        "parameters": n_params,
        "macs_per_second": bandnet.count_macs_per_frame(model) * SR // HOP,
        # train.py --lookahead: the gains of frame t belong to frame t - N
        "lookahead_frames": int(st.get("lookahead", 0)),
    })
    export(model, Path(args.out), meta)
    d_tb, d_bs = parity(model, args.out)
    digest = hashlib.sha256(Path(args.out).read_bytes()).hexdigest()
    print(f"exported {args.out}: {n_params} parameters, {Path(args.out).stat().st_size} bytes, sha256 {digest}")
    print(f"parity: torch vs ort batch {d_tb:.2e}, ort batch vs ort T=1 streaming {d_bs:.2e}")
    if max(d_tb, d_bs) > 1e-4:
        print("PARITY FAILED (> 1e-4)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
