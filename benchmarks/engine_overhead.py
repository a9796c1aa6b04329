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

Timing on a shared machine: each of ``--repeats`` repeats (30) runs the four variants back to
back in a rotated order, after a full garbage collection, with process CPU time and one
thread, ``--inner`` times (3), and keeps each variant's fastest run (interference from other
jobs only adds time); the ratio of each variant to ``bare`` is taken *within* a repeat
(paired), so load that drifts between repeats cancels. The reported ratio is the median of
the paired ratios with a distribution-free 95% interval (order statistics), and a target
counts as met only when the whole interval is under it ("inconclusive" when the machine was
too noisy to tell).

What made the engine read slower than it is (issue 15), found by timing variants in between
(a bare loop calling the bound energy, a bare loop of ``langevin_step``, the full ``langevin``):

* the C heap. With glibc's default policy freed buffers go back to the system and the next
  step faults fresh pages in: 18-30 % of every variant's time, the bare loop's too (8 s of
  system CPU in a 47 s run), and the share moved with the heap's state, so paired ratios
  drifted within a run. ``--allocator tuned`` (the default; what the ``conceptebm`` command
  sets, ``conceptebm.runtime.tune_allocator``) keeps freed buffers for reuse; the JSON
  records the run's system CPU seconds.
* the chain's energy trace. ``run_chain`` kept each step's ``(chains,)`` energy tensor alive
  in a list; those small blocks sat between the big per-step buffers, so the next step's
  activations and noise landed on other, cache-cold addresses (the profile showed
  ``torch.randn`` and ``silu`` slower inside the engine than in the bare loop). The trace
  is now one tensor written in place: engine minus step loop went from +0.2 ms to +0.04 ms a
  step on a cheap energy.
* full garbage collections. A Pyro model allocates hundreds of Python objects a step, which
  sets off a full collection every few hundred steps, and each walked the ~180k objects of the
  imported modules. The tuned run freezes them first (``gc.freeze``, as the command does).
* the Pyro path's own glue (issue 15, second pass). ``ModelPotential`` re-ran the model under
  three stacked handlers (``block(trace(condition(...)))``) and summed the sites' log-probs:
  an ``energy_factor``'s log-prob is Pyro's ``Unit`` distribution's ``-E`` expanded twice, so
  the backward pass walked six extra ops a step. Now one handler conditions, records and
  blocks (no ``Trace``), the potential reads each factor's ``E`` off its site (the backward
  graph is the net's own: same op list as the engine path's), ``unpack`` makes no no-op views,
  ``run_kernel`` switches Pyro's validation off once per loop (as ``pyro.infer.MCMC`` does)
  and unadjusted kernels skip the acceptance tallies. Tiny net: Pyro path minus engine path
  340 -> 190 us a step. What is left is the model itself: its plate (a subsample site), its
  prior's construction and its ``pyro.sample`` / ``pyro.factor`` sites, ~0.15 ms a step.

Unpaired minima of separate runs, as used before, read the engine slower than the Pyro path in
one run of three (1.255 vs 1.104) although the engine does strictly less work: each variant's
minimum came from a different moment of the machine's load, and the Pyro paths' many small
Python objects left garbage whose collection could land inside the next variant's timing. On
a CUDA device it uses synchronized wall-clock time instead.

JSON keys: ``ratio_engine``, ``ratio_pyro`` (pyro_kernel), ``ratio_pyro_potential``: medians of
the paired ratios; ``*_ci95``: their 95% intervals; ``verdict_engine`` / ``verdict_pyro`` against
the targets 1.05 / 1.15; ``ratio_of_minima`` (the old estimate, for comparison); ``times_ms``
(min per variant); ``paired_ratios`` (every repeat); ``max_abs_diff`` (final images vs bare);
``load_average`` (1-minute load before and after); ``params`` and the settings.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from conceptebm.concepts import Concept
from conceptebm.energies import ConditionalEnergy
from conceptebm.infer import langevin
from conceptebm.infer.pyro import LangevinKernel, ModelPotential, energy_factor, run_kernel
from conceptebm.runtime import freeze_gc, tune_allocator

STEP, NOISE = 100.0, 0.005  # the EBM-training sampler constants (official code, step 100)
TARGETS = {"engine": 1.05, "pyro_kernel": 1.15}  # time / bare loop


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


def median_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """Median of ``values`` and a distribution-free confidence interval for it.

    The interval is ``(v_(j), v_(k))`` of the sorted values with ``j, k`` chosen from the
    Binomial(n, 1/2) law of how many values fall below the true median (the classic order
    statistic interval: no assumption about the shape of the timing distribution). With
    n = 30 and level 0.95 that is the 10th and 21st of the sorted values.
    """
    v = sorted(values)
    n = len(v)
    if n < 6:  # too few for a 95% interval: report the range (the quick mode)
        return statistics.median(v), v[0], v[-1]
    alpha = 1.0 - level
    cdf, j = 0.0, 0
    for i in range(n + 1):  # largest j with P(Binomial(n, 1/2) < j) <= alpha / 2
        p = math.comb(n, i) / 2**n
        if cdf + p > alpha / 2:
            j = i
            break
        cdf += p
    j = max(j, 1)
    return statistics.median(v), v[j - 1], v[n - j]


def verdict(lo: float, hi: float, target: float) -> str:
    """'met' when the whole interval is at or under the target, 'missed' when it is all above,
    else 'inconclusive' (the machine was too noisy to tell: add repeats)."""
    return "met" if hi <= target else "missed" if lo > target else "inconclusive"


def run(batch: int = 64, steps: int = 50, repeats: int = 30, size: int = 32, seed: int = 0,
        device: str = "cpu", allocator: str = "tuned", inner: int = 3) -> dict:
    torch.set_num_threads(1)
    tuned = tune_allocator() if allocator == "tuned" else False
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
    frozen = freeze_gc() if allocator == "tuned" else 0  # what the conceptebm command does
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    sys_before = os.times().system
    times = {n: [] for n in names}
    paired = {n: [] for n in names}  # per repeat: time / bare's time in the same repeat
    for r in tqdm(range(repeats), desc="repeats", leave=False):
        took = {n: math.inf for n in names}
        # Each repeat runs every variant back to back, in a rotated order, so slow drifts of
        # machine load hit all of them alike; the ratio to bare is taken within the repeat.
        # It does so `inner` times and keeps each variant's fastest: interference from other
        # jobs only ever adds time, so the minimum of a few runs a second apart is the
        # variant's own cost at that moment (timeit's reasoning), paired with bare's.
        # A full collection first: otherwise one variant pays for another's Python garbage
        # (the Pyro paths allocate many small objects), which made the engine read slower
        # than the Pyro path in some unpaired runs.
        for _ in range(inner):
            for n in names[r % len(names):] + names[:r % len(names)]:
                gen = torch.Generator(device=dev).manual_seed(seed + 1)
                gc.collect()
                t0 = now()
                finals[n] = VARIANTS[n](net, x0, c, steps, gen)
                took[n] = min(took[n], now() - t0)
        for n in names:
            times[n].append(took[n])
            paired[n].append(took[n] / took["bare"])
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    system_s = os.times().system - sys_before  # kernel time: page faults of a churning heap
    ref = finals["bare"]
    summary = {n: median_ci(paired[n]) for n in names}
    res = {
        "ratio_engine": summary["engine"][0],
        "ratio_engine_ci95": list(summary["engine"][1:]),
        "ratio_pyro": summary["pyro_kernel"][0],
        "ratio_pyro_ci95": list(summary["pyro_kernel"][1:]),
        "ratio_pyro_potential": summary["pyro_potential"][0],
        "ratio_pyro_potential_ci95": list(summary["pyro_potential"][1:]),
        "verdict_engine": verdict(*summary["engine"][1:], TARGETS["engine"]),
        "verdict_pyro": verdict(*summary["pyro_kernel"][1:], TARGETS["pyro_kernel"]),
        "ratio_of_minima": {n: min(times[n]) / min(times["bare"]) for n in names},
        "times_ms": {n: 1000 * min(t) for n, t in times.items()},
        "paired_ratios": paired,
        "max_abs_diff": {n: float((finals[n] - ref).abs().max()) for n in names},
        "params": sum(p.numel() for p in net.parameters()),
        "batch": batch, "steps": steps, "repeats": repeats, "inner": inner, "image_size": size,
        "device": str(dev), "threads": torch.get_num_threads(),
        "load_average": [load_before, load_after],
        "allocator": "tuned (conceptebm.runtime)" if tuned else "default",
        "gc_frozen_objects": frozen,
        "system_cpu_s": system_s,
        "clock": "process_time" if dev.type != "cuda" else "synchronized wall clock",
        "torch": torch.__version__, "pyro": pyro.__version__,
    }
    return res


def _table(res: dict) -> str:
    lines = [f"{res['steps']} steps, batch {res['batch']} x 3x{res['image_size']}x"
             f"{res['image_size']}, {res['params']} params, {res['repeats']} paired repeats "
             f"(each the fastest of {res['inner']}) "
             f"({res['clock']}, {res['threads']} thread, {res['device']}, load "
             f"{res['load_average'][0]:.1f} -> {res['load_average'][1]:.1f}; allocator "
             f"{res['allocator']}, system CPU {res['system_cpu_s']:.1f} s)",
             f"{'variant':<16}{'min ms':>9}{'paired ratio (median, 95% CI)':>32}"
             f"{'ratio of minima':>17}{'max|x - bare|':>15}"]
    for n, ms in res["times_ms"].items():
        med, lo, hi = median_ci(res["paired_ratios"][n])
        lines.append(f"{n:<16}{ms:>9.1f}{med:>14.3f} [{lo:.3f}, {hi:.3f}]"
                     f"{'':>2}{res['ratio_of_minima'][n]:>17.3f}{res['max_abs_diff'][n]:>15.2e}")
    lines.append(f"engine / bare = {res['ratio_engine']:.3f} [{res['ratio_engine_ci95'][0]:.3f}, "
                 f"{res['ratio_engine_ci95'][1]:.3f}] (target <= {TARGETS['engine']}: "
                 f"{res['verdict_engine']}); pyro / bare = {res['ratio_pyro']:.3f} "
                 f"[{res['ratio_pyro_ci95'][0]:.3f}, {res['ratio_pyro_ci95'][1]:.3f}] "
                 f"(target <= {TARGETS['pyro_kernel']}: {res['verdict_pyro']})")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke mode: batch 8, 16x16 images, 5 steps, 3 repeats")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=30,
                   help="paired repeats (30 gives a 95%% interval from the 10th to 21st ratio)")
    p.add_argument("--inner", type=int, default=3,
                   help="runs of every variant within a repeat; the repeat keeps each one's "
                        "fastest (1: a single run, the round-1 measure)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="e.g. cpu or cuda")
    p.add_argument("--allocator", choices=("tuned", "default"), default="tuned",
                   help="tuned: the heap policy and frozen start-up objects the conceptebm "
                        "command sets (conceptebm.runtime.tune_process); default: glibc's "
                        "heap (page faults, drift) and full GC walks of every module")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    for name in ("batch", "steps", "repeats", "inner"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.json is not None and args.json.is_dir():
        p.error(f"--json {args.json} is a directory; give a file path such as "
                "out/engine_overhead.json")
    if args.quick:
        res = run(batch=8, steps=5, repeats=3, size=16, seed=args.seed, device=args.device,
                  allocator=args.allocator, inner=1)
    else:
        res = run(args.batch, args.steps, args.repeats, seed=args.seed, device=args.device,
                  allocator=args.allocator, inner=args.inner)
    print(_table(res))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
