"""Cut a trained model down to fewer GRU units (structured pruning), as the start of a
faster model: per-hop CPU time is mostly the three GRUs' matrix-vector products, which
read every weight once per hop (models/MODEL_CARD.md, "CPU time per hop").

Which units go: each unit's output is measured on training mixtures (never the validation
split) through the model in streaming order, and scored by how much it moves what reads
it: the spread of its output (standard deviation over time) times the norm of the weights
that read it. The units with the lowest scores are dropped, and their mean outputs are
folded into the biases of what read them (vae.narrow_weights). The result is a checkpoint
for `train.py --init` (usually with `--teacher` set to the original, see train.py).

    .venv/bin/python narrow.py --init runs/cpu_v19/last.pt --hidden 288 --out runs/cpu_v25/init.pt
"""
import argparse
from pathlib import Path

import torch

import mixer
import vae
from train import stft
from vae import VaeDenoiser

HERE = Path(__file__).resolve().parent


def unit_stats(model, batches):
    """Mean and standard deviation per unit of the encoder GRU's output, the decoder GRU's
    output and the residual stream (decoder + second layer's projection) the heads read."""
    seen = {"enc": [], "dec": [], "res": []}
    hooks = [
        model.enc.register_forward_hook(lambda m, i, o: seen["enc"].append(o[0].flatten(0, 1))),
        model.dec.register_forward_hook(lambda m, i, o: seen["dec"].append(o[0].flatten(0, 1))),
        model.gain.register_forward_hook(lambda m, i, o: seen["res"].append(i[0].flatten(0, 1))),
    ]
    win = vae.sqrt_hann()
    with torch.no_grad():
        for noisy in batches:
            model(torch.view_as_real(stft(noisy, win)), *model.initial_state(noisy.shape[0]))
    for h in hooks:
        h.remove()
    return {k: (torch.cat(v).mean(0), torch.cat(v).std(0)) for k, v in seen.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init", required=True, help="the checkpoint to cut down")
    ap.add_argument("--hidden", type=int, required=True, help="the new width of the encoder and decoder GRUs")
    ap.add_argument("--out", required=True, help="the narrowed checkpoint (for train.py --init)")
    ap.add_argument("--corpus", default=str(HERE / "cache" / "corpus"))
    ap.add_argument("--batches", type=int, default=4, help="training batches of 16 x 6 s to measure the units on")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()

    st = torch.load(args.init, map_location="cpu")
    src = {k: v.float() for k, v in st["model"].items()}
    model = VaeDenoiser.for_weights(src)
    model.load_state_dict(src)
    model.eval()
    if not 0 < args.hidden < model.hidden:
        raise SystemExit(f"--hidden {args.hidden}: must be below the model's {model.hidden} units")
    gen = torch.Generator()
    gen.manual_seed(args.seed)
    train = mixer.Corpus(args.corpus, "train", "cpu")
    batches = [mixer.make_batch(train, 16, 6 * mixer.SR, gen, room_target="full")[0] for _ in range(args.batches)]
    stats = unit_stats(model, batches)

    def col_norm(*names):
        return torch.sqrt(sum(src[n].pow(2).sum(0) for n in names if n in src))

    # what reads each unit: its own GRU's recurrence and the layers after it
    score_enc = stats["enc"][1] * col_norm("enc.weight_hh_l0", "mu.weight")
    score_dec = (stats["dec"][1] * col_norm("dec.weight_hh_l0", "dec2.weight_ih_l0")
                 + stats["res"][1] * col_norm("gain.weight", "vad.weight", "df.weight"))
    keep_enc = torch.sort(torch.argsort(score_enc, descending=True)[: args.hidden]).values
    keep_dec = torch.sort(torch.argsort(score_dec, descending=True)[: args.hidden]).values
    out = vae.narrow_weights(src, keep_enc, keep_dec, stats["enc"][0], stats["dec"][0], stats["res"][0])
    shape = VaeDenoiser.shape_of(src)
    shape["hidden"] = args.hidden
    small = VaeDenoiser(**shape)
    small.load_state_dict(out)  # fails loudly if a tensor was missed
    for name, score, keep in (("encoder", score_enc, keep_enc), ("decoder", score_dec, keep_dec)):
        kept = score[keep].sum() / score.sum()
        print(f"{name}: kept {len(keep)} of {len(score)} units, {100 * kept:.1f} % of the summed score")
    print(f"parameters {sum(p.numel() for p in model.parameters())} -> {sum(p.numel() for p in small.parameters())}, "
          f"MACs per hop {vae.count_macs_per_frame(model)} -> {vae.count_macs_per_frame(small)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(model=small.state_dict(), step=0, used_s=0.0, lookahead=st.get("lookahead", 0),
                    narrowed_from=str(args.init)), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
