"""conceptebm: compositional energy-based models and concept inference (PyTorch + Pyro).

Implements and extends Du, Li & Mordatch, *Compositional Visual Generation with Energy Based
Models* (NeurIPS 2020): concept energies composed with AND / OR / NOT, one inference engine
for generation and concept inference, procedural 3-D scenes, and contrastive-divergence
training.
"""

from conceptebm import energies, infer
from conceptebm.concepts import Concept
from conceptebm.energies import And, ConditionalEnergy, Energy, Not, Or, Scale

__version__ = "0.1.0"


def __getattr__(name: str):
    # conceptebm.load (conceptebm.models) resolves on first use, so that importing the engine
    # (conceptebm.infer, which imports this package first) loads nothing above it
    if name == "load":
        from conceptebm.models import load

        return load
    raise AttributeError(f"module 'conceptebm' has no attribute {name!r}")

__all__ = [
    "__version__",
    "load",
    "energies",
    "infer",
    "Concept",
    "Energy",
    "ConditionalEnergy",
    "And",
    "Or",
    "Not",
    "Scale",
]
