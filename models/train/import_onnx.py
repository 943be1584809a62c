#!/usr/bin/env python3
"""Read a model's weights back out of its ONNX file into a PyTorch checkpoint that
train.py --init, export.py and evaluate.py take, so that training can go on from the
shipped model when no checkpoint of it survives (the runs/ folder is git-ignored and a
fresh machine has none; models/denoiser.onnx is the one copy that is committed).

  python import_onnx.py --onnx ../denoiser.onnx --out runs/shipped/last.pt
  python import_onnx.py --onnx ../denoiser.onnx --save-map cache/init_map.npz   # gpu_prepare --shipped
  python3 import_onnx.py --onnx ../denoiser.onnx --map cache/init_map.npz --out cache/init.pt  # gpu_sweep.sh

How: the exporter turns PyTorch parameters into ONNX initializers, transposed, stacked
and with the GRU gates reordered (PyTorch r,z,n; ONNX z,r,h). Rather than restate those
rules here, the same exporter is run on a probe model of the same shape whose every
parameter element holds its own index (exact in float32 below 2**24). Each element of
the probe's initializers then names the PyTorch element it came from, and the shipped
file's initializer of the same name gives its value. The shape (widths, optional inputs
and heads) is read from the file's state tensors and outputs; every PyTorch element must
be found, and every copy of it must agree. Finally the imported model is run against the
file through ONNX Runtime (export.parity's inputs) and must match within 1e-4.

The element map can be saved (--save-map) and used instead of the probe (--map): then no
torch.onnx.export runs, so a machine with another PyTorch (a lent GPU machine's), whose
exporter might name initializers differently, reads the same file the same way. The map
is the size of the weights as int32 (8.9 MB for cpu_v19), but its index runs compress to
0.45 MB in an xz archive, so it travels where the weights (the file is already in the
working tree) would not fit.
"""
import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
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
    the target's, else the map: for each initializer that holds parameter elements, the
    index of the PyTorch element (in named_parameters() order, flattened) at each of its
    positions."""
    model = VaeDenoiser(**shape)
    params = list(model.named_parameters())
    total = sum(p.numel() for _, p in params)
    if ID_BASE + total >= ID_MAX:
        raise SystemExit(f"import_onnx: {total} parameters are too many for float32 ids")
    with torch.no_grad():
        off = ID_BASE
        for _, p in params:
            p.copy_(torch.arange(off, off + p.numel(), dtype=torch.float64).reshape(p.shape).float())
            off += p.numel()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.onnx"
        export.export(model, path, export.contract_meta())
        probe = initializers(onnx.load(str(path)))
    if set(probe) != set(target) or any(probe[k].shape != target[k].shape for k in probe):
        return None
    found = np.zeros(total, dtype=bool)
    ids_by_init = {}
    for k, arr in probe.items():
        flat = arr.reshape(-1).astype(np.float64)
        is_id = (flat >= ID_BASE) & (flat < ID_BASE + total) & (flat == np.round(flat))
        if not is_id.any():
            continue
        if not is_id.all():
            raise SystemExit(f"import_onnx: initializer {k} mixes parameter elements with other values "
                             "(folded by the exporter); this model cannot be read back element by element")
        ids_by_init[k] = (flat - ID_BASE).astype(np.int32)
        found[ids_by_init[k]] = True
    missing = int((~found).sum())
    if missing:
        raise SystemExit(f"import_onnx: {missing} parameter elements are not in the file's initializers")
    return ids_by_init


def apply_map(shape, ids_by_init, target):
    """A model of `shape` with every parameter element taken from the target's initializers
    through the map, and every buffer the file holds under its own name."""
    model = VaeDenoiser(**shape)
    params = list(model.named_parameters())
    total = sum(p.numel() for _, p in params)
    values = np.full(total, np.nan, dtype=np.float64)
    for k, ids in ids_by_init.items():
        if k not in target or target[k].size != ids.size:
            raise SystemExit(f"import_onnx: the file has no initializer {k} of {ids.size} elements "
                             "(the map was made from another file)")
        v = target[k].reshape(-1).astype(np.float64)
        seen = ~np.isnan(values[ids])
        if seen.any() and not np.array_equal(values[ids][seen], v[seen]):
            raise SystemExit(f"import_onnx: two copies of the same weight differ in {k}")
        values[ids] = v
    if np.isnan(values).any():
        raise SystemExit(f"import_onnx: {int(np.isnan(values).sum())} parameter elements are not in the map")
    with torch.no_grad():
        off = 0
        for _, p in params:
            p.copy_(torch.from_numpy(values[off : off + p.numel()].reshape(p.shape)).float())
            off += p.numel()
        # buffers travel in the checkpoint too, and a checkpoint's may differ from what the
        # code computes today (the band matrix of the shipped lineage does, by up to 2e-4):
        # take each one the file holds under its own name
        for name, b in model.named_buffers():
            v = target.get(f"m.{name}")
            if v is not None and v.shape == tuple(b.shape):
                b.copy_(torch.from_numpy(np.array(v)).to(b.dtype))
    return model.eval()


def find_map(target_proto, target):
    for shape in file_shape(target_proto):
        ids_by_init = probe_map(shape, target)
        if ids_by_init is not None:
            return shape, ids_by_init
    raise SystemExit("import_onnx: the file does not fit any shape of vae.VaeDenoiser "
                     "(its initializers differ from every probe's)")


def save_map(path, shape, ids_by_init):
    """The map as .npz, uncompressed (its index runs compress well in an xz archive)."""
    np.savez(path, shape=np.array(json.dumps(shape)), **{f"init:{k}": v for k, v in ids_by_init.items()})


def load_map(path):
    z = np.load(path)
    return json.loads(str(z["shape"])), {k[len("init:"):]: z[k] for k in z.files if k.startswith("init:")}


def import_weights(onnx_path, map_path=None):
    """(model, shape, the file's ModelProto, the map). With `map_path` (written by --save-map
    from the same file) no probe is exported: torch.onnx.export is not needed, and the
    PyTorch version may differ from the one that wrote the map (a lent GPU machine's)."""
    target_proto = onnx.load(str(onnx_path))
    target = initializers(target_proto)
    shape, ids_by_init = load_map(map_path) if map_path else find_map(target_proto, target)
    return apply_map(shape, ids_by_init, target), shape, target_proto, ids_by_init


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", required=True, help="an ONNX file written by export.py")
    ap.add_argument("--out", help="checkpoint to write (model weights and step)")
    ap.add_argument("--save-map", help="also write the element map (for --map on a machine without the "
                                       "same PyTorch; gpu_prepare carries it)")
    ap.add_argument("--map", help="use this element map instead of exporting a probe")
    args = ap.parse_args()
    model, shape, proto, ids_by_init = import_weights(args.onnx, args.map)
    meta = {p.key: p.value for p in proto.metadata_props}
    d_tb, d_bs = export.parity(model, args.onnx)
    print(f"imported {args.onnx}: {sum(p.numel() for p in model.parameters())} parameters, shape {shape}")
    print(f"parity against the file: torch vs ort batch {d_tb:.2e}, ort batch vs ort T=1 streaming {d_bs:.2e}")
    if max(d_tb, d_bs) > 1e-4:
        print("IMPORT FAILED: the imported weights do not reproduce the file (> 1e-4)", file=sys.stderr)
        return 1
    if args.save_map:
        save_map(args.save_map, shape, ids_by_init)
        print(f"wrote the element map {args.save_map}")
    if not args.out:
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    torch.save(dict(model=model.state_dict(), step=int(meta.get("training_steps", 0)), used_s=0.0,
                    lookahead=int(meta.get("lookahead_frames", 0))), tmp)
    tmp.replace(out)
    print(f"wrote {out} (training_steps {meta.get('training_steps', '?')} from the file's metadata)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
