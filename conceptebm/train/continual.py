"""Continual learning (paper section 4.3): learn a new concept inside a composition.

The new concept's EBM is trained while the sampler also sums earlier, frozen EBMs:
negatives come from ``E_new(x|c_new) + sum_j E_j(x|c_j)`` with every label read off the same
data batch, and only E_new enters the loss. The earlier EBMs get no gradient: their
parameters have ``requires_grad=False`` and are not in the optimizer, so they cannot change.

``TrainConfig.frozen`` lists them as checkpoint paths or shipped names
(``conceptebm.pretrained``); each one's concept must be a label of the training dataset.

Example:
    >>> frozen = load_frozen(["position"])
    >>> [e.concept.name for e in frozen]
    ['position']
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from conceptebm.checkpoints import load_energy
from conceptebm.energies import ConditionalEnergy

__all__ = ["load_frozen", "freeze"]


def freeze(energy: ConditionalEnergy) -> ConditionalEnergy:
    """Eval mode and ``requires_grad=False`` on every parameter; returns ``energy``."""
    energy.eval()
    for p in energy.parameters():
        p.requires_grad_(False)
    return energy


def load_frozen(specs: Sequence[str | ConditionalEnergy], device=None) -> list[ConditionalEnergy]:
    """Load earlier EBMs (a checkpoint path, a shipped name, or a module) and freeze them."""
    out = []
    for spec in specs:
        if isinstance(spec, ConditionalEnergy):
            energy = spec.to(device) if device is not None else spec
        elif str(spec).endswith(".safetensors") or Path(str(spec)).exists():
            energy = load_energy(spec, device=device)
        else:
            from conceptebm import pretrained

            energy = pretrained.load(str(spec), device=device)
        out.append(freeze(energy))
    names = [e.concept.name for e in out]
    if len(set(names)) != len(names):
        raise ValueError(f"frozen EBMs must be for distinct concepts, got {names}")
    return out
