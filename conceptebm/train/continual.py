"""Continual learning (paper section 4.3): learn a new concept inside a composition.

The new concept's EBM is trained while the sampler also sums earlier, frozen EBMs:
negatives come from ``E_new(x|c_new) + sum_j E_j(x|c_j)`` with every label read off the same
data batch, and only E_new enters the loss. The earlier EBMs get no gradient: their
parameters have ``requires_grad=False`` and are not in the optimizer, so they cannot change.

``TrainConfig.frozen`` lists them as checkpoint paths or shipped names
(``conceptebm.pretrained``); each one's concept must be a label of the training dataset.

The chain has one step size, the new EBM's (``TrainConfig.step_size``). A frozen EBM trained
with another step enters it step-matched (:func:`match_steps`): its energy scaled by its own
step over the chain's, so the shared chain moves it as its own sampler did. Without that, a
shape EBM trained with step 1 (steep energies, the shipped recipe) beside a position EBM
trained with step 100 would see position move 100 times too little; the composition that
generates afterwards (:func:`conceptebm.compose.generate`) matches steps the same way.

Example:
    >>> frozen = load_frozen(["position"])
    >>> [e.concept.name for e in frozen]
    ['position']
"""

from __future__ import annotations

from collections.abc import Sequence

from conceptebm.energies import ConditionalEnergy, StepMatched
from conceptebm.models import load

__all__ = ["load_frozen", "freeze", "match_steps"]


def freeze(energy: ConditionalEnergy) -> ConditionalEnergy:
    """Eval mode and ``requires_grad=False`` on every parameter; returns ``energy``."""
    energy.eval()
    for p in energy.parameters():
        p.requires_grad_(False)
    return energy


def load_frozen(specs: Sequence[str | ConditionalEnergy], device=None) -> list[ConditionalEnergy]:
    """Load earlier EBMs (a shipped name, a checkpoint, a run folder: :func:`conceptebm.load`;
    or a module) and freeze them."""
    out = []
    for spec in specs:
        if isinstance(spec, ConditionalEnergy):
            energy = spec.to(device) if device is not None else spec
        else:  # a shipped name, a checkpoint or a run folder: the one front door
            energy = load(spec, device=device)
        out.append(freeze(energy))
    names = [e.concept.name for e in out]
    if len(set(names)) != len(names):
        raise ValueError(f"frozen EBMs must be for distinct concepts, got {names}")
    return out


def match_steps(frozen: Sequence[ConditionalEnergy], step_size: float
                ) -> list[ConditionalEnergy]:
    """Each frozen EBM as a chain of step ``step_size`` should see it: wrapped in
    :class:`~conceptebm.energies.StepMatched` when its recorded step differs (models without
    recorded settings are left as they are); parameters stay the frozen ones.

    Example:
        >>> from conceptebm import pretrained
        >>> shape = freeze(pretrained.load("shape"))     # trained with step 1
        >>> [type(e).__name__ for e in match_steps([shape], 100.0)]
        ['StepMatched']
        >>> match_steps([shape], shape.sampler.step_size)[0] is shape
        True
    """
    out = []
    for f in frozen:
        own = f.sampler.step_size if f.sampler is not None else None
        out.append(StepMatched(f, step_size).eval() if own and own != step_size else f)
    return out
