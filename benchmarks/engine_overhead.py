"""What does the engine cost over a bare torch loop? And the path through a Pyro model?

    python benchmarks/engine_overhead.py                      # B=64 3x32x32, 50 steps, table
    python benchmarks/engine_overhead.py --quick --json out/engine_overhead.json

Fifty steps of the decoupled Langevin step of EBM training (step 100, noise 0.005, clamp to
[0, 1]) on a small FiLM-conditioned conv energy (about 20k parameters), four ways:

* ``bare``: the loop one would write by hand,
  ``g = autograd.grad(net(x, c).sum(), x); x = (x - step*g + noise*randn).clamp(0, 1)``;
* ``engine``: ``infer.langevin(net.given(c), x0, step_size=100, noise_scale=0.005,
  bounds=(0, 1))``;
* ``pyro_kernel``: the same step through a Pyro model (``energy_factor`` in a plate, a U(0, 1)
  pixel prior), driven by ``LangevinKernel`` in the loop form ``run_kernel``;
* ``pyro_potential``: that model's ``ModelPotential`` given to ``infer.langevin``.

All four draw the same noise from a seeded generator, so they compute the same chains; the
table reports the largest difference of their final images from ``bare`` as a check.
Timing: the variants are interleaved, each repeat in a rotated order, and each keeps the
minimum over repeats of process CPU time with one thread, so load from other processes
biases the ratios little (absolute times still grow under load). On a CUDA device it uses
synchronized wall-clock time instead.

JSON keys: ``ratio_engine`` = engine / bare, ``ratio_pyro`` = pyro_kernel / bare,
``ratio_pyro_potential`` = pyro_potential / bare (ratios of the minima), ``times_ms`` (min per
variant), ``median_paired_ratio`` (median over repeats of time / bare's time in the same
repeat: a second estimate, robust to load that drifts between repeats),
``max_abs_diff`` (final images vs bare), ``params``, and the settings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from conceptebm.concepts import Concept
from conceptebm.energies import ConditionalEnergy
from conceptebm.infer import langevin
from conceptebm.infer.pyro import LangevinKernel, ModelPotential, energy_factor, run_kernel

STEP, NOISE = 100.0, 0.005  # the EBM-training sampler constants (official code, step 100)


class FiLMConvEnergy(ConditionalEnergy):
    """E(x|c): 3 stride-2 convs (3->16->32->48), each FiLM-modulated by c, then a linear head.

    About 20k parameters; the same shape of net as the CPU prototype's, a little smaller.
    """

    def __init__(self, concept_dim: int = 2, widths=(16, 32, 48), image_size: int = 32):
        super().__init__(Concept.continuous("position", dim=concept_dim))
        chans = (3, *widths)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1)
                                   for a, b in zip(chans[:-1], chans[1:], strict=True))
        self.film = nn.Linear(concept_dim, 2 * sum(widths))  # per-layer (scale, shift)
        self.head = nn.Linear(widths[-1] * (image_size // 8) ** 2, 1)  # after 3 stride-2 convs
        self.widths = widths

    def energy(self, x, c):
        gamma_beta = self.film(c).split([2 * w for w in self.widths], dim=1)
        h = x  # (B, 3, 32, 32)
        for conv, gb in zip(self.convs, gamma_beta, strict=True):
            gamma, beta = gb[:, :, None, None].chunk(2, dim=1)  # (B, w, 1, 1) each
            h = F.silu(conv(h) * (1 + gamma) + beta)  # (B, w, H/2, W/2)
        return self.head(h.flatten(1))[:, 0]  # (B,)


def image_model(net, c, size=32):
    """Generation as a Pyro model: pixels with a U(0, 1) prior, one EBM factor per image."""
    with pyro.plate("images", c.shape[0]):
        x = pyro.sample("x", dist.Uniform(0.0, 1.0).expand([3, size, size]).to_event(3))
        energy_factor("ebm", net, x, c, event_dim=3)


def bare(net, x0, c, steps, gen):
    x = x0.clone()
    for _ in range(steps):
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(net.energy(x, c).sum(), x)
        noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        x = (x.detach() - STEP * g + NOISE * noise).clamp(0, 1)
    return x


def engine(net, x0, c, steps, gen):
    return langevin(net.given(c), x0, num_steps=steps, step_size=STEP, noise_scale=NOISE,
                    bounds=(0, 1), generator=gen)


def pyro_kernel(net, x0, c, steps, gen):
    kernel = LangevinKernel(image_model, step_size=STEP, noise_scale=NOISE, generator=gen)
    return run_kernel(kernel, steps, net, c, x0.shape[-1], initial_params={"x": x0})["x"]


def pyro_potential(net, x0, c, steps, gen):
    pot = ModelPotential(image_model, (net, c, x0.shape[-1]), init={"x": x0})
    return langevin(pot, x0, num_steps=steps, step_size=STEP, noise_scale=NOISE,
                    bounds=pot.bounds, generator=gen)


VARIANTS = {"bare": bare, "engine": engine, "pyro_kernel": pyro_kernel,
            "pyro_potential": pyro_potential}


def _clock(device: torch.device):
    if device.type == "cuda":
        def now():
            torch.cuda.synchronize(device)
            return time.perf_counter()
        return now
    return time.process_time


def run(batch: int = 64, steps: int = 50, repeats: int = 10, size: int = 32, seed: int = 0,
        device: str = "cpu") -> dict:
    torch.set_num_threads(1)
    dev = torch.device(device)
    torch.manual_seed(seed)
    net = FiLMConvEnergy(image_size=size).to(dev).requires_grad_(False)  # no weight grads
    gen0 = torch.Generator(device=dev).manual_seed(seed)
    x0 = torch.rand(batch, 3, size, size, generator=gen0, device=dev)
    c = torch.rand(batch, 2, generator=gen0, device=dev) * 2 - 1
    now = _clock(dev)
    names = list(VARIANTS)
    finals = {n: VARIANTS[n](net, x0, c, 2, torch.Generator(device=dev).manual_seed(1))
              for n in names}  # warm-up: first calls pay one-time costs
    best = dict.fromkeys(names, float("inf"))
    paired = {n: [] for n in names}  # per repeat: time / bare's time in the same repeat
    for r in range(repeats):
        took = {}
        for n in names[r % len(names):] + names[:r % len(names)]:  # rotate the order
            gen = torch.Generator(device=dev).manual_seed(seed + 1)
            t0 = now()
            finals[n] = VARIANTS[n](net, x0, c, steps, gen)
            took[n] = now() - t0
            best[n] = min(best[n], took[n])
        for n in names:
            paired[n].append(took[n] / took["bare"])
    ref = finals["bare"]
    return {
        "ratio_engine": best["engine"] / best["bare"],
        "ratio_pyro": best["pyro_kernel"] / best["bare"],
        "ratio_pyro_potential": best["pyro_potential"] / best["bare"],
        "times_ms": {n: 1000 * t for n, t in best.items()},
        "median_paired_ratio": {n: statistics.median(v) for n, v in paired.items()},
        "max_abs_diff": {n: float((finals[n] - ref).abs().max()) for n in names},
        "params": sum(p.numel() for p in net.parameters()),
        "batch": batch, "steps": steps, "repeats": repeats, "image_size": size,
        "device": str(dev), "threads": torch.get_num_threads(),
        "clock": "process_time" if dev.type != "cuda" else "synchronized wall clock",
        "torch": torch.__version__, "pyro": pyro.__version__,
    }


def _table(res: dict) -> str:
    bare_ms = res["times_ms"]["bare"]
    lines = [f"{res['steps']} steps, batch {res['batch']} x 3x{res['image_size']}x"
             f"{res['image_size']}, {res['params']} params, min of {res['repeats']} "
             f"({res['clock']}, {res['threads']} thread, {res['device']})",
             f"{'variant':<16}{'ms':>10}{'ratio':>8}{'paired':>8}{'max|x - bare|':>16}"]
    for n, ms in res["times_ms"].items():
        lines.append(f"{n:<16}{ms:>10.1f}{ms / bare_ms:>8.3f}"
                     f"{res['median_paired_ratio'][n]:>8.3f}{res['max_abs_diff'][n]:>16.2e}")
    lines.append(f"ratio_engine = {res['ratio_engine']:.3f} (target <= 1.05), ratio_pyro = "
                 f"{res['ratio_pyro']:.3f} (target <= 1.15)")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke mode: batch 8, 16x16 images, 5 steps, 2 repeats")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="e.g. cpu or cuda")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    if args.quick:
        res = run(batch=8, steps=5, repeats=2, size=16, seed=args.seed, device=args.device)
    else:
        res = run(args.batch, args.steps, args.repeats, seed=args.seed, device=args.device)
    print(_table(res))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
