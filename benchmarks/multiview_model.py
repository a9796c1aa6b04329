"""Train the position energy that multi-view inference uses (paper section 4.5, Figure 11).

    python benchmarks/multiview_model.py                      # runs/position_multiview.safetensors
    python benchmarks/multiview_model.py --quick --out /tmp/mv.safetensors

The shipped "position" EBM only knows the default camera. Multi-view inference needs E(x|c)
for views from any side (``make_dataset("multiview")``: camera azimuth 0-360 deg, elevation
35-75 deg, distance 7.5-9.5; a faint ground gradient tells the directions apart), with ``c``
the world position shared by all views of a scene.

Recipe: the same :class:`~conceptebm.energies.nets.ConvEnergyNet` as the shipped models
(width 16, about 180k parameters), trained with the concept-contrastive loss alone
(:func:`conceptebm.train.concept_contrastive_loss`: the true position against 7 uniform wrong
ones, cross-entropy on ``-E``) plus a 0.01 L2 penalty on the energies; Adam 1e-3, batch 32,
5000 iterations on fresh renders (about 5.5 minutes on one free core), the first 300 on
default-camera scenes (a curriculum: see below). ``exp(-E(x|c))`` normalised over ``c`` is
then a model of ``p(c | x)``, which is exactly what eq. 11 multiplies across views.

Why not ``conceptebm train``: three ``conceptebm train --dataset multiview
--contrastive-weight ...`` runs (weights 1 and 10, lr 5e-4 and 1e-3, Adam betas (0, 0.999) and
(0.9, 0.999)) stayed at chance (contrastive cross-entropy log 8) for 800-2000 iterations or
diverged. Contrastive training straight on multi-view scenes also sits at chance for a
seed-dependent time (about 300 iterations in one run, over 1700 in another); 300 iterations on
default-camera scenes first, where position is easy to read, removed that plateau.

The checkpoint is written with :func:`conceptebm.train.save_checkpoint` (net config
included), so ``conceptebm infer --model PATH`` and ``load_energy(PATH)`` read it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from conceptebm.datasets import make_dataset
from conceptebm.energies.nets import ConvEnergyNet
from conceptebm.train import concept_contrastive_loss, save_checkpoint, wrong_concept_values

DEFAULT_OUT = "runs/position_multiview.safetensors"
RECIPE = {"dataset": "multiview", "n_views": 8, "dataset_size": 200_000, "seed": 0,
          "iterations": 5000, "batch_size": 32, "negatives": 7, "lr": 1e-3, "l2": 0.01,
          "width": 16, "curriculum": 300, "loss": "concept-contrastive only (no CD)"}


def train_multiview_model(out: str | Path = DEFAULT_OUT, *, iterations: int | None = None,
                          width: int | None = None, seed: int = 0, dataset: str = "multiview",
                          center_input: bool = False, downsample: str = "stride",
                          progress: bool = True) -> Path:
    """Train (see the module docstring) and save; returns the checkpoint path.

    ``dataset="position"`` trains the same recipe on default-camera scenes (no curriculum):
    the shipped ``position_contrastive``. ``dataset="shape"`` (or "color", "size") trains the
    dataset's own concept the same way: a discriminative start for ``conceptebm train
    --init-weights`` (categorical concepts get every wrong category as negatives).
    ``center_input`` feeds pixels as 2x - 1 (needed for shape: see ConvEnergyNet);
    ``downsample="pool"`` builds the pooled layout (see ConvEnergyNet).
    """
    cfg = {**RECIPE, "seed": seed, "center_input": bool(center_input), "downsample": downsample}
    if dataset != "multiview":
        cfg.update(dataset=dataset, n_views=None, curriculum=0)
    if iterations is not None:
        cfg["iterations"] = int(iterations)
    if width is not None:
        cfg["width"] = int(width)
    ds = make_dataset(cfg["dataset"], size=cfg["dataset_size"], seed=seed,
                      **({"n_views": cfg["n_views"]} if cfg["n_views"] else {}))
    easy = make_dataset("position", size=cfg["dataset_size"], seed=seed)  # default camera
    name = "position" if dataset == "multiview" else dataset
    concept = ds.concepts[name]
    torch.manual_seed(seed)  # weight init only; data and negatives use the generator
    net = ConvEnergyNet(concept, width=cfg["width"], center_input=cfg["center_input"],
                        downsample=cfg["downsample"])
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    gen = torch.Generator().manual_seed(seed)
    b, t0, acc_avg = cfg["batch_size"], time.time(), 0.0
    bar = tqdm(range(cfg["iterations"]), desc=f"{cfg['dataset']} {name}", disable=not progress)
    for it in bar:
        source = easy if it < cfg["curriculum"] else ds  # easy first: see the docstring
        x, labels = source.batch(torch.randint(len(ds), (b,), generator=gen))  # (B, 3, H, W)
        c = concept.encode(labels[name]) if concept.is_categorical else labels[name]  # (B, L)
        wrong = wrong_concept_values(concept, c, cfg["negatives"], generator=gen)  # (B, M, L)
        m = wrong.shape[1]
        e = net(torch.cat([x, x.repeat_interleave(m, 0)]),
                torch.cat([c, wrong.reshape(-1, concept.dim)]))  # (B + B*M,)
        ce, acc = concept_contrastive_loss(e[:b], e[b:].reshape(b, m))
        loss = ce + cfg["l2"] * e.pow(2).mean()
        if not torch.isfinite(loss):
            raise RuntimeError(f"training diverged at iteration {it} (loss {loss.item()}); "
                               f"lower the learning rate (now {cfg['lr']})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc_avg = 0.98 * acc_avg + 0.02 * acc.item()
        if it % 20 == 0:
            bar.set_postfix(ce=f"{ce.item():.3f}", acc=f"{acc_avg:.2f}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg.update(train_s=round(time.time() - t0, 1), final_acc=round(acc_avg, 3))
    save_checkpoint(out, {"model": net.state_dict()},
                    {"net": net.config, "train": cfg,
                     "command": "python benchmarks/multiview_model.py " + " ".join(sys.argv[1:])})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=DEFAULT_OUT, help=f"checkpoint path ({DEFAULT_OUT})")
    p.add_argument("--iterations", type=int, default=None,
                   help=f"default {RECIPE['iterations']}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", default="multiview",
                   choices=("multiview", "position", "shape", "color", "size"),
                   help="position: the same recipe on default-camera scenes; shape, color, "
                        "size: that concept (a start for conceptebm train --init-weights)")
    p.add_argument("--center-input", action="store_true", help="pixels as 2x - 1 (shape)")
    p.add_argument("--downsample", choices=("stride", "pool"), default="stride",
                   help="4x4/2 convs or 3x3 conv + 2x2 average pooling")
    p.add_argument("--quick", action="store_true", help="30 iterations of a width-4 net")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    kw = {"iterations": 30, "width": 4} if args.quick else {"iterations": args.iterations}
    path = train_multiview_model(args.out, seed=args.seed, dataset=args.dataset,
                                 center_input=args.center_input, downsample=args.downsample, **kw)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
