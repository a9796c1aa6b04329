"""Pyro glue: the engine's Langevin and MALA steps as Pyro ``MCMCKernel`` s.

:class:`LangevinKernel` and :class:`MALAKernel` implement Pyro's small kernel interface
(``setup``, ``initial_params``, ``sample``, ``transforms``, ``logging``, ``diagnostics``), so
``pyro.infer.MCMC`` runs them, but every step is :func:`~conceptebm.infer.samplers.ula_step`,
:func:`~conceptebm.infer.samplers.langevin_step` or :func:`~conceptebm.infer.samplers.mala_step`
("one engine"). Unlike Pyro's HMC/NUTS, which make one accept decision for the whole state,
MALA here accepts per chain: the potential is a
:class:`~conceptebm.infer.pyro.potential.ModelPotential` with one energy per element of the
model's chain plate.

``pyro.infer.MCMC`` stores every sample. For image generation step the kernel in a loop
instead: :func:`run_kernel` returns only the final state.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

import pyro
import torch
from pyro.infer import NUTS
from pyro.infer.autoguide.initialization import init_to_uniform
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel
from torch import Tensor
from tqdm.auto import tqdm

from conceptebm.energies.ops import require_grounded
from conceptebm.infer.adapt import init_step_size, update_step_size
from conceptebm.infer.pyro.potential import SPACES, ModelPotential
from conceptebm.infer.samplers import (
    BOUNDARIES,
    LangevinState,
    check_bounds,
    init_state,
    langevin_step,
    mala_step,
    ula_step,
)

__all__ = ["LangevinKernel", "MALAKernel", "StatsNUTS", "run_kernel"]


class _TensorTarget:
    """The packing interface of ModelPotential for a plain energy over one tensor site."""

    def __init__(self, energy: Callable, name: str, value: Tensor):
        require_grounded(energy)
        if value.dim() < 2:
            raise ValueError(f"initial value of {name!r} must be (chains, *event), got shape "
                             f"{tuple(value.shape)}")
        self.energy, self.sites, self.transforms, self.bounds = energy, (name,), {}, None
        self.initial = value
        self.chains = value.shape[0]

    def __call__(self, z: Tensor) -> Tensor:
        return self.energy(z)

    def pack(self, values: dict) -> Tensor:
        return values[self.sites[0]]

    def unpack(self, z: Tensor) -> dict:
        return {self.sites[0]: z}

    constrained = unpack


class _EngineKernel(MCMCKernel):
    """Shared machinery: target construction, state caching, counters, Pyro's interface."""

    _metropolis = True  # False: steps without an accept test (their tallies are known)

    def __init__(self, model=None, *, potential_fn=None, step_size=0.01, space="constrained",
                 latent: Sequence[str] | None = None, chain_plate: str | None = None,
                 bounds="auto", boundary: str = "clamp", grad_clip: float | None = None,
                 init_strategy: Callable = init_to_uniform,
                 generator: torch.Generator | None = None):
        if (model is None) == (potential_fn is None):
            raise ValueError("give exactly one of model (a Pyro model) or potential_fn (an "
                             "energy over one tensor, with initial_params={'name': x0})")
        if space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {space!r}")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        if isinstance(step_size, Tensor):
            if not (torch.isfinite(step_size).all() and (step_size > 0).all()):
                raise ValueError("step_size must be finite and > 0 for every chain")
        elif not (math.isfinite(float(step_size)) and float(step_size) > 0):
            raise ValueError(f"step_size must be a finite number > 0, got {step_size}")
        self.model, self.potential_fn = model, potential_fn
        self.step_size = step_size
        self.space, self.latent, self.chain_plate = space, latent, chain_plate
        self._bounds_arg = bounds if bounds == "auto" else check_bounds(bounds)
        self.boundary, self.grad_clip = boundary, grad_clip
        self.init_strategy, self.generator = init_strategy, generator
        self.transforms = None  # set by setup(); MCMC maps samples back with .inv
        self.target = None
        self._initial_params = None
        self._user_init = False

    # ------------------------------------------------------------------ Pyro interface
    @property
    def initial_params(self) -> dict:
        """Initial site values in the kernel's space (constrained unless space='unconstrained')."""
        return self._initial_params

    @initial_params.setter
    def initial_params(self, params: dict) -> None:
        self._initial_params = dict(params)
        self._user_init = True

    def setup(self, warmup_steps: int, *args, **kwargs) -> None:
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self._warmup_steps = int(warmup_steps)
        user = self._initial_params if self._user_init else None
        if self.model is not None:
            init = user if (user is not None and self.space == "constrained") else None
            self.target = ModelPotential(self.model, args, kwargs, latent=self.latent,
                                         space=self.space, chain_plate=self.chain_plate,
                                         init=init, init_strategy=self.init_strategy)
        else:
            if user is None or len(user) != 1:
                raise ValueError("a kernel built from potential_fn needs initial_params with "
                                 "exactly one entry, e.g. initial_params={'x': x0}")
            (name, value), = user.items()
            self.target = _TensorTarget(self.potential_fn, name, value)
        self.transforms = dict(self.target.transforms)
        self.bounds = self.target.bounds if self._bounds_arg == "auto" else self._bounds_arg
        if user is None:
            self._initial_params = self.target.unpack(self.target.initial)
        self._t, self._state, self._last = 0, None, None
        chains, device = self.target.chains, self.target.initial.device
        self._accepted = torch.zeros(chains, device=device)
        self._accept_prob = torch.zeros(chains, device=device)
        self._nonfinite = torch.zeros(chains, dtype=torch.long, device=device)
        self._counted = 0
        self._setup_step_size(chains)

    def _setup_step_size(self, chains: int) -> None:
        self._eps = self.step_size

    def sample(self, params: dict) -> dict:
        last = self._last
        if last is not None and all(params.get(k) is v for k, v in last.items()):
            state = self._state  # our own previous output: reuse cached energy and gradient
        else:
            state = LangevinState(self.target.pack(params).detach())
        if self._t == 0:
            state = self._first(state)
        state, info = self._step(state)
        warm = self._t < self._warmup_steps
        self._adapt(info, warm)
        if not warm:
            if self._metropolis:  # unadjusted steps accept every chain (or raise): no tally
                self._accepted += info.accepted
                self._accept_prob += info.accept_prob
                self._nonfinite += info.nonfinite
            self._counted += 1
        self._t += 1
        self._state = state
        self._last = self.target.unpack(state.x)
        return dict(self._last)

    def _first(self, state: LangevinState) -> LangevinState:
        return state

    def _adapt(self, info, warm: bool) -> None:
        pass

    def constrained(self, params: dict) -> dict:
        """Kernel-space site values -> the model's own space."""
        return {k: self.transforms[k].inv(v) if k in self.transforms else v
                for k, v in params.items()}

    def _rates(self) -> tuple[float, float]:
        """(acceptance rate, mean acceptance probability) over the kept steps."""
        if not self._metropolis:
            return (1.0, 1.0) if self._counted else (0.0, 0.0)
        n = max(self._counted, 1)
        return float(self._accepted.mean()) / n, float(self._accept_prob.mean()) / n

    def logging(self) -> OrderedDict:
        return OrderedDict([("step size", f"{self._mean_eps():.2e}"),
                            ("acc. prob", f"{self._rates()[1]:.3f}")])

    def diagnostics(self) -> dict:
        return {"acceptance rate": self._rates()[0],
                "nonfinite": int(self._nonfinite.sum()),
                "step size": self._mean_eps()}

    def _mean_eps(self) -> float:
        eps = self._eps
        return float(eps.mean()) if isinstance(eps, Tensor) else float(eps)


class LangevinKernel(_EngineKernel):
    """Unadjusted Langevin as a Pyro kernel: eq. (3) or the decoupled EBM-training form.

    With ``noise_scale=None`` each step is :func:`~conceptebm.infer.samplers.ula_step`,
    ``z - (step/2) grad U + N(0, step)``, which targets exp(-U) up to an O(step) bias. With a
    ``noise_scale`` it is :func:`~conceptebm.infer.samplers.langevin_step`, the sampler of EBM
    training, which does not target exp(-U). ``bounds="auto"`` keeps the latent's box support
    (pixels in [0, 1], a concept's range) by ``boundary`` = ``"clamp"`` or ``"reflect"``.

    Args:
        model: a Pyro model (its unobserved sites are sampled), or
        potential_fn: an energy ``(chains, *event) -> (chains,)`` with
            ``initial_params={"name": x0}``.
        step_size: float or ``(chains,)`` tensor. space, latent, chain_plate, init_strategy:
            see :class:`~conceptebm.infer.pyro.potential.ModelPotential`.
        grad_clip: per-chain gradient norm limit. generator: a ``torch.Generator`` (default: the
            global RNG, so ``pyro.set_rng_seed`` applies).

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from conceptebm.energies import Gaussian
        >>> from conceptebm.infer.pyro import energy_factor
        >>> def model():
        ...     with pyro.plate("chains", 16):
        ...         x = pyro.sample("x", dist.Uniform(-3., 3.).expand([2]).to_event(1))
        ...         energy_factor("ebm", Gaussian(torch.zeros(2), 1.0), x, event_dim=1)
        >>> mcmc = pyro.infer.MCMC(LangevinKernel(model, step_size=0.1), num_samples=20,
        ...                        warmup_steps=10, disable_progbar=True)
        >>> mcmc.run()
        >>> mcmc.get_samples()["x"].shape
        torch.Size([20, 16, 2])
    """

    _metropolis = False

    def __init__(self, model=None, *, potential_fn=None, step_size=0.01,
                 noise_scale: float | None = None, boundary: str = "clamp", **kw):
        if boundary == "reject":
            raise ValueError("boundary='reject' needs a Metropolis test: use MALAKernel, or "
                             "'clamp'/'reflect' here")
        super().__init__(model, potential_fn=potential_fn, step_size=step_size,
                         boundary=boundary, **kw)
        if noise_scale is not None and not (math.isfinite(noise_scale) and noise_scale >= 0):
            raise ValueError(f"noise_scale must be a finite number >= 0, got {noise_scale}")
        self.noise_scale = noise_scale

    def _step(self, state):
        common = dict(bounds=self.bounds, boundary=self.boundary, grad_clip=self.grad_clip,
                      generator=self.generator)
        if self.noise_scale is None:
            return ula_step(state, self.target, step_size=self._eps, **common)
        return langevin_step(state, self.target, step_size=self._eps,
                             noise_scale=self.noise_scale, **common)


class MALAKernel(_EngineKernel):
    """Metropolis-adjusted Langevin as a Pyro kernel, with a per-chain accept/reject.

    Each step is :func:`~conceptebm.infer.samplers.mala_step`; it targets exp(-U) exactly (on
    the latent's box with the default ``boundary="reject"``, or in unconstrained space with
    ``space="unconstrained"``). With ``adapt_step_size`` each chain's step size follows a
    Robbins-Monro recursion toward ``target_accept`` during warmup and is frozen afterwards,
    so the samples Pyro keeps come from an exact MCMC kernel.

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from conceptebm.energies import Gaussian
        >>> from conceptebm.infer.pyro import energy_factor
        >>> def model():
        ...     with pyro.plate("chains", 16):
        ...         x = pyro.sample("x", dist.Uniform(-5., 5.).expand([2]).to_event(1))
        ...         energy_factor("ebm", Gaussian(torch.zeros(2), 1.0), x, event_dim=1)
        >>> mcmc = pyro.infer.MCMC(MALAKernel(model, step_size=0.5), num_samples=50,
        ...                        warmup_steps=50, disable_progbar=True)
        >>> mcmc.run()
        >>> mcmc.diagnostics()["acceptance rate"]["chain 0"] > 0.3
        True
    """

    def __init__(self, model=None, *, potential_fn=None, step_size=0.01,
                 boundary: str = "reject", adapt_step_size: bool = True,
                 target_accept: float = 0.574, **kw):
        super().__init__(model, potential_fn=potential_fn, step_size=step_size,
                         boundary=boundary, **kw)
        if not 0 < target_accept < 1:
            raise ValueError(f"target_accept must lie in (0, 1), got {target_accept}")
        self.adapt_step_size, self.target_accept = adapt_step_size, target_accept

    def _setup_step_size(self, chains: int) -> None:
        self._eps, self._adapt_state = self.step_size, None

    def _first(self, state: LangevinState) -> LangevinState:
        if not (self.adapt_step_size and self._warmup_steps > 0):
            return state
        # The adaptation of infer.mala (conceptebm.infer.adapt): a doubling/halving search
        # first, since the decaying Robbins-Monro gain alone cannot recover from a step that
        # is orders of magnitude off.
        state = init_state(self.target, state.x)
        self._adapt_state = init_step_size(state, self.target, self.step_size,
                                           bounds=self.bounds, boundary=self.boundary,
                                           grad_clip=self.grad_clip, generator=self.generator)
        self._eps = self._adapt_state.step_size  # (chains,)
        return state

    def _step(self, state):
        return mala_step(state, self.target, step_size=self._eps, bounds=self.bounds,
                         boundary=self.boundary, grad_clip=self.grad_clip,
                         generator=self.generator)

    def _adapt(self, info, warm: bool) -> None:
        if warm and self._adapt_state is not None:
            # Robbins-Monro per chain during warmup, as in infer.mala; frozen afterwards.
            self._adapt_state = update_step_size(self._adapt_state, info.accept_prob,
                                                 target_accept=self.target_accept)
            self._eps = self._adapt_state.step_size


def run_kernel(kernel: _EngineKernel, num_steps: int, *model_args, warmup_steps: int = 0,
               initial_params: dict | None = None, progress: bool = False,
               **model_kwargs) -> dict:
    """Step ``kernel`` ``warmup_steps + num_steps`` times and return only the final values.

    The loop form for generation: ``pyro.infer.MCMC`` would store every image. Returns the
    latent sites in the model's own space (e.g. pixels), after the last step.

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from conceptebm.energies import Gaussian
        >>> from conceptebm.infer.pyro import energy_factor
        >>> def model(n):
        ...     with pyro.plate("images", n):
        ...         x = pyro.sample("x", dist.Uniform(0., 1.).expand([3, 8, 8]).to_event(3))
        ...         energy_factor("ebm", Gaussian(torch.full((192,), 0.5), 0.1),
        ...                       x.flatten(-3), event_dim=1)
        >>> out = run_kernel(LangevinKernel(model, step_size=1e-3), 20, 4)
        >>> out["x"].shape, bool(out["x"].min() >= 0)
        (torch.Size([4, 3, 8, 8]), True)
    """
    if int(num_steps) != num_steps or num_steps < 0:
        raise ValueError(f"num_steps must be an integer >= 0, got {num_steps}")
    if initial_params is not None:
        kernel.initial_params = initial_params
    kernel.setup(warmup_steps, *model_args, **model_kwargs)
    params = kernel.initial_params
    with pyro.validation_enabled(False):  # as pyro.infer.MCMC does; once, not every step
        for _ in tqdm(range(warmup_steps + num_steps), desc="pyro kernel",
                      disable=not progress, leave=False):
            params = kernel.sample(params)
    return {k: v.detach() for k, v in kernel.constrained(params).items()}


class StatsNUTS(NUTS):
    """Pyro's NUTS keeping each iteration's sampler statistics (warm-up included).

    ``stats`` holds lists, one entry per iteration: ``step_size`` (the size it used),
    ``acceptance_rate`` (the mean Metropolis acceptance over the trajectory, read back from
    Pyro's running mean), ``diverging`` (Pyro counts divergences after warm-up only, so
    warm-up entries are ``False``), ``tree_depth`` (the number of trajectory doublings) and
    ``potential_energy`` (Pyro's potential at the draw: the unconstrained space's, the
    Jacobian of the box transform included). The chain itself is Pyro's, unchanged; its
    progress bar (``progress=True``) shows the step size, acceptance and divergences.
    """

    STATS = ("step_size", "acceptance_rate", "diverging", "tree_depth", "potential_energy")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stats = {k: [] for k in self.STATS}
        self._depth = 0

    def _build_tree(self, z, r, z_grads, log_slice, direction, tree_depth, energy_current):
        # called with depth 0, 1, 2, ... for each doubling (recursions go lower)
        self._depth = max(self._depth, int(tree_depth) + 1)
        return super()._build_tree(z, r, z_grads, log_slice, direction, tree_depth,
                                   energy_current)

    def logging(self):
        """Pyro's progress bar: step size, mean acceptance, and divergences so far."""
        out = super().logging()
        out["div."] = len(self._divergences)
        return out

    def sample(self, params):
        self._depth, eps = 0, float(self.step_size)
        divergences, before = len(self._divergences), self._mean_accept_prob
        z = super().sample(params)
        n = self._t - self._warmup_steps if self._t > self._warmup_steps else self._t
        s = self.stats
        s["step_size"].append(eps)
        s["acceptance_rate"].append(float(n * self._mean_accept_prob - (n - 1) * before))
        s["diverging"].append(len(self._divergences) > divergences)
        s["tree_depth"].append(self._depth)
        pe = self._potential_energy_last
        s["potential_energy"].append(float("nan") if pe is None else float(pe))
        return z
