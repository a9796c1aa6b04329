"""The engine inside Pyro: EBM factors, model potentials, MCMC kernels, MAP and NUTS.

* :func:`~conceptebm.infer.pyro.factor.energy_factor`: an EBM term in any Pyro model, as
  ``pyro.factor(name, -E)`` with its plate shape checked;
* :class:`~conceptebm.infer.pyro.potential.ModelPotential`: a model's ``-log joint`` as a
  per-chain :class:`~conceptebm.energies.Energy` over its latent sites, which ``langevin``,
  ``mala`` and ``run_chain`` consume directly;
* :class:`~conceptebm.infer.pyro.kernels.LangevinKernel`,
  :class:`~conceptebm.infer.pyro.kernels.MALAKernel`: ``pyro.infer.MCMC`` kernels that step
  with :mod:`conceptebm.infer.samplers` (per-chain accept), and
  :func:`~conceptebm.infer.pyro.kernels.run_kernel`, the loop form for generation;
* :func:`~conceptebm.infer.pyro.inference.pyro_map` (MAP in the concept's own space, no
  Jacobian) and :func:`~conceptebm.infer.pyro.inference.nuts_posterior` (Pyro's NUTS on a
  low-dimensional concept posterior, started at the MAP).
"""

from conceptebm.infer.pyro.factor import energy_factor, plate_shape
from conceptebm.infer.pyro.inference import PyroMAP, nuts_posterior, pyro_map
from conceptebm.infer.pyro.kernels import LangevinKernel, MALAKernel, StatsNUTS, run_kernel
from conceptebm.infer.pyro.potential import SPACES, ModelPotential, support_limits

__all__ = [
    "energy_factor",
    "plate_shape",
    "ModelPotential",
    "support_limits",
    "SPACES",
    "LangevinKernel",
    "MALAKernel",
    "StatsNUTS",
    "run_kernel",
    "pyro_map",
    "PyroMAP",
    "nuts_posterior",
]
