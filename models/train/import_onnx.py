#!/usr/bin/env python3
"""Read a model's weights back out of its ONNX file into a PyTorch checkpoint that
train.py --init, export.py and evaluate.py take, so that training can go on from the
shipped model when no checkpoint of it survives (the runs/ folder is git-ignored and a
fresh machine has none; models/denoiser.onnx is the one copy that is committed).

  python import_onnx.py --onnx ../denoiser.onnx --out runs/shipped/last.pt

How: the exporter turns PyTorch parameters into ONNX initializers, transposed, stacked
and with the GRU gates reordered (PyTorch r,z,n; ONNX z,r,h). Rather than restate those
rules here, the same exporter is run on a probe model of the same shape whose every
parameter element holds its own index (exact in float32 below 2**24). Each element of
the probe's initializers then names the PyTorch element it came from, and the shipped
file's initializer of the same name gives its value. The shape (widths, optional inputs
and heads) is read from the file's state tensors and outputs; every PyTorch element must
be found, and every copy of it must agree. Finally the imported model is run against the
file through ONNX Runtime (export.parity's inputs) and must match within 1e-4.
"""
import argparse
import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

import export
from vae import VaeDenoiser

ID_BASE = 4_000_000  # probe ids start here, far from any constant the graph holds
ID_MAX = 2**24  # float32 holds every integer below this exactly


def file_shape(model_proto):
    """Constructor arguments the file's inputs and outputs fix; flatness and peak emphasis
    leave no state tensor and are tried both ways (candidates)."""
    dims = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model_proto.graph.input}
    outs = {o.name for o in model_proto.graph.output}
    base = dict(hidden=dims["state_in_enc_gru"][2], conv_ch=dims["state_in_conv1"][1],
                noise_floor="state_in_noise_floor" in dims, phase="state_in_phase_prev" in dims,
                deep_filter="df_coefs" in outs, dec_layers=2 if "state_in_dec2_gru" in dims else 1)
    for flatness, peak in itertools.product([True, False], [False, True]):
        yield dict(base, flatness=flatness, peak_emphasis=peak)


def initializers(model_proto):
    return {t.name: numpy_helper.to_array(t) for t in model_proto.graph.initializer}


def probe_map(shape, target):
    """For a model of `shape`, export a probe; return None if its initializers do not fit
    the target's, else (model, its named parameters, each parameter's first id, and per
    initializer that holds parameter elements: (name, positions, element indices))."""
    model = VaeDenoiser(**shape)
    params = list(model.named_parameters())
    total = sum(p.numel() for _, p in params)
    if ID_BASE + total >= ID_MAX:
        raise SystemExit(f"import_onnx: {total} parameters are too many for float32 ids")
    start = {}
    with torch.no_grad():
        off = ID_BASE
        for name, p in params:
            start[name] = off
            p.copy_(torch.arange(off, off + p.numel(), dtype=torch.float64).reshape(p.shape).float())
            off += p.numel()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.onnx"
        export.export(model, path, export.contract_meta())
        probe = initializers(onnx.load(str(path)))
    if set(probe) != set(target) or any(probe[k].shape != target[k].shape for k in probe):
        return None
    found = np.zeros(total, dtype=bool)
    hits = []  # (initializer name, positions in it, ids)
    for k, arr in probe.items():
        flat = arr.reshape(-1).astype(np.float64)
        is_id = (flat >= ID_BASE) & (flat < ID_BASE + total) & (flat == np.round(flat))
        if not is_id.any():
            continue
        if not is_id.all():
            raise SystemExit(f"import_onnx: initializer {k} mixes parameter elements with other values "
                             "(folded by the exporter); this model cannot be read back element by element")
        hits.append((k, np.arange(flat.size), flat.astype(np.int64) - ID_BASE))
        found[flat.astype(np.int64) - ID_BASE] = True
    missing = int((~found).sum())
    if missing:
        raise SystemExit(f"import_onnx: {missing} parameter elements are not in the file's initializers")
    return model, params, start, hits


def import_weights(onnx_path):
    target_proto = onnx.load(str(onnx_path))
    target = initializers(target_proto)
    for shape in file_shape(target_proto):
        got = probe_map(shape, target)
        if got is not None:
            break
    else:
        raise SystemExit(f"import_onnx: {onnx_path} does not fit any shape of vae.VaeDenoiser "
                         "(its initializers differ from every probe's)")
    model, params, start, hits = got
    total = sum(p.numel() for _, p in params)
    values = np.full(total, np.nan, dtype=np.float64)
    for k, pos, ids in hits:
        v = target[k].reshape(-1).astype(np.float64)[pos]
        seen = ~np.isnan(values[ids])
        if seen.any() and not np.array_equal(values[ids][seen], v[seen]):
            raise SystemExit(f"import_onnx: two copies of the same weight differ in {k}")
        values[ids] = v
    with torch.no_grad():
        for name, p in params:
            o = start[name] - ID_BASE
            p.copy_(torch.from_numpy(values[o : o + p.numel()].reshape(p.shape)).float())
        # buffers travel in the checkpoint too, and a checkpoint's may differ from what the
        # code computes today (the band matrix of the shipped lineage does, by up to 2e-4):
        # take each one the file holds under its own name
        for name, b in model.named_buffers():
            v = target.get(f"m.{name}")
            if v is not None and v.shape == tuple(b.shape):
                b.copy_(torch.from_numpy(np.array(v)).to(b.dtype))
    model.eval()
    return model, shape, target_proto


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", required=True, help="an ONNX file written by export.py")
    ap.add_argument("--out", required=True, help="checkpoint to write (model weights and step)")
    args = ap.parse_args()
    model, shape, proto = import_weights(args.onnx)
    meta = {p.key: p.value for p in proto.metadata_props}
    d_tb, d_bs = export.parity(model, args.onnx)
    print(f"imported {args.onnx}: {sum(p.numel() for p in model.parameters())} parameters, shape {shape}")
    print(f"parity against the file: torch vs ort batch {d_tb:.2e}, ort batch vs ort T=1 streaming {d_bs:.2e}")
    if max(d_tb, d_bs) > 1e-4:
        print("IMPORT FAILED: the imported weights do not reproduce the file (> 1e-4)", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    torch.save(dict(model=model.state_dict(), step=int(meta.get("training_steps", 0)), used_s=0.0), tmp)
    tmp.replace(out)
    print(f"wrote {out} (training_steps {meta.get('training_steps', '?')} from the file's metadata)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
