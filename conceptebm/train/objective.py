"""The training objective as a list of loss terms, each owning its rows and its weight.

A :class:`LossTerm` says which rows it needs the net to score (:meth:`~LossTerm.rows`: named
blocks of ``(images, labels)``, e.g. ``"pos"``: the real images under their labels) and how
its value follows from their energies (:meth:`~LossTerm.value`). Two terms that name the same
block share it (CD and the contrastive terms both read ``"pos"``), so every real image is
scored once. :class:`Sum` adds terms, each times its :attr:`~LossTerm.scale`, and is itself
a ``LossTerm`` (Optax style: a composite has the shape of its parts). :class:`Objective`
is the module the loop calls (and DDP wraps): it concatenates the blocks of its loss in one
batch, makes ONE pass through the net (so one DDP forward syncs every gradient), splits the
energies back by block, and returns ``(loss, stats)``.

The two objectives of the loop (``TrainConfig.objective``) are compositions:

* :class:`CDObjective` (``"cd"``): eq. (2) of the paper, ``CD + L2 [+ concept-contrastive]
  [+ image-contrastive] [+ KL]`` (:mod:`conceptebm.train.loss` explains each term).
* :class:`ContrastiveObjective` (``"contrastive"``): the concept-contrastive term alone plus an
  L2 penalty on every energy it scores: no sampler, no negatives images, no buffer. It made
  the shipped ``position_contrastive`` and ``position_multiview``: ``exp(-E(x|c))``
  normalised over ``c`` is then a model of ``p(c | x)``, which is what MAP inference and
  multi-view products need, but its Langevin samples are not images.

A new loss term: subclass :class:`LossTerm` (``name``, ``rows``, ``value``), add it to the
list in :func:`make_objective` (or to your own :class:`Objective`).

Example:
    >>> import torch
    >>> from conceptebm.concepts import Concept
    >>> from conceptebm.energies.nets import ConvEnergyNet
    >>> net = ConvEnergyNet(Concept.continuous("size", low=0.3, high=0.7), image_size=16, width=4)
    >>> obj = CDObjective(net, l2=0.1)
    >>> [t.name for t in obj.loss.terms]
    ['cd', 'l2']
    >>> x, c = torch.rand(4, 3, 16, 16), torch.full((4, 1), 0.5)
    >>> loss, stats = obj(x, c, torch.rand(4, 3, 16, 16), c)
    >>> sorted(stats)
    ['cd', 'e_neg', 'e_pos', 'loss']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

from conceptebm.energies.base import ConditionalEnergy
from conceptebm.infer.settings import DEFAULT, IMAGE_BOUNDS
from conceptebm.train.config import OBJECTIVES
from conceptebm.train.loss import concept_contrastive_loss, image_contrastive_loss, same_value

__all__ = ["Batch", "LossTerm", "CDTerm", "L2Term", "ConceptContrastiveTerm",
           "ImageContrastiveTerm", "EmptyContrastiveTerm", "KLTerm", "Sum", "Objective",
           "CDObjective", "ContrastiveObjective", "OBJECTIVES", "make_objective", "splits"]

Rows = dict[str, tuple[Tensor, Tensor]]  # block name -> (images (N, C, H, W), labels (N, L)
#                                         or (N, R, L): R candidate values per image)


@dataclass
class Batch:
    """What one update's loss sees. ``x_pos (B, C, H, W)``: real images; ``c_pos (B, L)``:
    their labels (the trained concept's encoding); ``x_neg``, ``c_neg``: sampler negatives and
    the labels they were sampled under (CD); ``c_wrong (B, M, L)``: wrong values for the
    concept-contrastive term; ``x_empty (K, C, H, W)``: object-free images for the empty
    term."""

    x_pos: Tensor
    c_pos: Tensor
    x_neg: Tensor | None = None
    c_neg: Tensor | None = None
    c_wrong: Tensor | None = None
    x_empty: Tensor | None = None

    def need(self, name: str, term: str) -> Tensor:
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"the {term!r} loss term needs batch.{name}, got None; pass it "
                             "to the objective (or drop the term)")
        return value


class LossTerm(nn.Module):
    """One term of the loss: the rows it scores, its value, its weight.

    Subclasses set ``name`` and implement :meth:`rows` (blocks to score; a block another term
    also names must be the same tensors) and :meth:`value`. The term enters a :class:`Sum` as
    ``scale * value``; ``scale`` is ``weight`` unless a subclass says otherwise.
    """

    name = "term"

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = float(weight)

    @property
    def scale(self) -> float:
        """The factor the term's value enters the loss with."""
        return self.weight

    def rows(self, batch: Batch) -> Rows:
        """Blocks of ``(images, labels)`` whose energies :meth:`value` reads."""
        return {}

    def value(self, e: dict[str, Tensor], batch: Batch,
              net: ConditionalEnergy) -> tuple[Tensor, dict[str, Tensor]]:
        """``(value, stats)`` from the energies ``e[block]`` (one per row of the block)."""
        raise NotImplementedError


class CDTerm(LossTerm):
    """Contrastive divergence, eq. (2): ``mean E(x+|c) - mean E(x-|c-)``; negatives detached
    (no gradient through the sampler). Stats: ``cd``, ``e_pos``, ``e_neg``."""

    name = "cd"

    def rows(self, batch: Batch) -> Rows:
        return {"pos": (batch.x_pos, batch.c_pos),
                "neg": (batch.need("x_neg", self.name).detach(), batch.need("c_neg", self.name))}

    def value(self, e, batch, net):
        cd = e["pos"].mean() - e["neg"].mean()
        return cd, {"cd": cd, "e_pos": e["pos"].mean(), "e_neg": e["neg"].mean()}


class L2Term(LossTerm):
    """L2 energy regularisation over other terms' blocks (it scores no rows of its own).

    ``pooled=False``: the sum over ``blocks`` of each block's ``mean E^2`` (the CD recipe:
    ``mean E+^2 + mean E-^2``); ``pooled=True``: ``mean E^2`` over all their rows together
    (the contrastive recipe: every energy it scores, true and wrong values alike).
    """

    name = "l2"

    def __init__(self, weight: float, blocks: Sequence[str] = ("pos", "neg"), *,
                 pooled: bool = False):
        super().__init__(weight)
        self.blocks, self.pooled = tuple(blocks), pooled

    def value(self, e, batch, net):
        missing = [b for b in self.blocks if b not in e]
        if missing:
            raise ValueError(f"L2Term regularises blocks {missing} that no other term scores "
                             f"(scored: {sorted(e)}); add the term that owns them first")
        if self.pooled:
            return torch.cat([e[b] for b in self.blocks]).pow(2).mean(), {}
        total = e[self.blocks[0]].pow(2).mean()
        for b in self.blocks[1:]:
            total = total + e[b].pow(2).mean()
        return total, {}


class ConceptContrastiveTerm(LossTerm):
    """For a real image, its true value against M wrong ones: cross-entropy over
    ``-E(x|c_j) / T`` (:func:`~conceptebm.train.loss.concept_contrastive_loss`). It enters the
    loss as ``weight * T * CE`` (the gradient of ``T * CE`` is on the energy scale). Stats:
    ``contrastive``, ``contrastive_acc``, and with ``report_energies`` ``e_pos``/``e_wrong``
    (the contrastive objective's energies, which the divergence guard watches)."""

    name = "contrastive"

    def __init__(self, weight: float, temperature: float, *, report_energies: bool = False):
        super().__init__(weight)
        self.temperature, self.report_energies = float(temperature), report_energies

    @property
    def scale(self) -> float:
        return self.weight * self.temperature

    def rows(self, batch: Batch) -> Rows:
        wrong = batch.need("c_wrong", self.name)  # (B, M, L)
        # M candidate values per real image: a (B, M, L) block (Objective.energies scores
        # the images once through a late net's trunk, or repeats them for a full pass)
        return {"pos": (batch.x_pos, batch.c_pos), "wrong": (batch.x_pos, wrong)}

    def value(self, e, batch, net):
        b = e["pos"].shape[0]
        e_wrong = e["wrong"].reshape(b, -1)  # (B, M)
        ce, acc = concept_contrastive_loss(e["pos"], e_wrong, self.temperature)
        stats = {"contrastive": ce, "contrastive_acc": acc}
        if self.report_energies:
            stats = {"e_pos": e["pos"].mean(), "e_wrong": e_wrong.mean(), **stats}
        return ce, stats


class EmptyContrastiveTerm(LossTerm):
    """For a real image under its true value ``c_i``, the same value on ``K`` object-free
    images: cross-entropy over ``-E / T`` with the real image as the answer (the form of
    :func:`~conceptebm.train.loss.concept_contrastive_loss`), so an image without an object
    scores above real scenes under every value and its best energy says "no object found".
    Enters as ``weight * T * CE``. Stats: ``empty``, ``empty_acc``, ``e_empty``."""

    name = "empty"

    def __init__(self, weight: float, temperature: float):
        super().__init__(weight)
        self.temperature = float(temperature)

    @property
    def scale(self) -> float:
        return self.weight * self.temperature

    def rows(self, batch: Batch) -> Rows:
        x_empty = batch.need("x_empty", self.name)  # (K, C, H, W)
        k, (b, width) = x_empty.shape[0], batch.c_pos.shape
        # every empty image under every real image's value: (K, B, L), image-major
        return {"pos": (batch.x_pos, batch.c_pos),
                "empty": (x_empty, batch.c_pos[None].expand(k, b, width))}

    def value(self, e, batch, net):
        b = e["pos"].shape[0]
        e_empty = e["empty"].reshape(-1, b).T  # (B, K): E(empty_k | c_i)
        ce, acc = concept_contrastive_loss(e["pos"], e_empty, self.temperature)
        return ce, {"empty": ce, "empty_acc": acc, "e_empty": e_empty.mean()}


class ImageContrastiveTerm(LossTerm):
    """For a label ``c_i``, its own real image against ``k`` other images of the batch (the
    batch rolled by 1..k), same-value ones masked
    (:func:`~conceptebm.train.loss.image_contrastive_loss`); enters as ``weight * T * CE``."""

    name = "image_contrastive"

    def __init__(self, weight: float, temperature: float, negatives: int):
        super().__init__(weight)
        self.temperature, self.negatives = float(temperature), int(negatives)

    @property
    def scale(self) -> float:
        return self.weight * self.temperature

    def _k(self, batch: Batch) -> int:
        return min(self.negatives, batch.x_pos.shape[0] - 1)

    def rows(self, batch: Batch) -> Rows:
        k = self._k(batch)
        if k < 1:
            raise ValueError(f"the image-contrastive term needs a batch of >= 2 images, got "
                             f"{batch.x_pos.shape[0]}; raise batch_size")
        # x_{i-shift} under c_i, shift = 1..k: other images, the same labels
        others = torch.cat([batch.x_pos.roll(s, dims=0) for s in range(1, k + 1)])  # (k*B, ...)
        return {"pos": (batch.x_pos, batch.c_pos), "other": (others, batch.c_pos.repeat(k, 1))}

    def value(self, e, batch, net):
        k, c = self._k(batch), batch.c_pos
        e_other = e["other"].reshape(k, -1).T  # (B, k): E(x_{i-shift} | c_i)
        c_other = torch.stack([c.roll(s, dims=0) for s in range(1, k + 1)], dim=1)  # (B, k, L)
        valid = ~same_value(net.concept, c[:, None], c_other)  # (B, k)
        ce, acc = image_contrastive_loss(e["pos"], e_other, valid, self.temperature)
        return ce, {"image_contrastive": ce, "image_contrastive_acc": acc}


class KLTerm(LossTerm):
    """The improved-CD KL term (Du et al. 2021): one more sampler step from the negatives,
    kept in the graph, scored by the energy with *frozen* parameters, so the parameters get a
    gradient only through the step. It scores its own rows (a second pass: the step needs the
    input gradient first)."""

    name = "kl"

    def __init__(self, weight: float, step_size: float, bounds: tuple[float, float] = IMAGE_BOUNDS):
        super().__init__(weight)
        self.step_size, self.bounds = float(step_size), tuple(bounds)

    def value(self, e, batch, net):
        kl = self.kl(net, batch.need("x_neg", self.name).detach(), batch.need("c_neg", self.name))
        return kl, {"kl": kl}

    def kl(self, net: ConditionalEnergy, x: Tensor, c: Tensor) -> Tensor:
        """``mean E_frozen(x - step * grad_x E(x|c))`` for negatives ``x (B, C, H, W)``."""
        # langevin_step cannot keep the step in the graph (it detaches by design); the noise
        # is omitted since it carries no parameter gradient
        x = x.requires_grad_(True)
        (g,) = torch.autograd.grad(net(x, c).sum(), x, create_graph=True)
        x_kl = (x - self.step_size * g).clamp(*self.bounds)  # (B, C, H, W), depends on theta
        frozen = {k: v.detach() for k, v in net.named_parameters()}
        return functional_call(net, frozen, (x_kl, c)).mean()


class Sum(LossTerm):
    """``sum_i scale_i * value_i`` of ``terms``, in order; a term itself (weight 1). Its rows
    are the union of the terms' blocks (the first term that names a block provides it), its
    stats the union of theirs."""

    name = "sum"

    def __init__(self, terms: Sequence[LossTerm]):
        super().__init__(1.0)
        if not terms:
            raise ValueError("Sum needs at least one loss term, got none")
        self.terms = nn.ModuleList(terms)

    def rows(self, batch: Batch) -> Rows:
        out: Rows = {}
        for term in self.terms:
            for name, block in term.rows(batch).items():
                out.setdefault(name, block)
        return out

    def value(self, e, batch, net):
        total, stats = None, {}
        for term in self.terms:
            v, s = term.value(e, batch, net)
            v = term.scale * v
            total = v if total is None else total + v
            stats.update(s)
        return total, stats


class Objective(nn.Module):
    """The loss of ``net`` as a module (so DDP can wrap it): ``forward`` scores every block
    of ``loss`` in one pass and returns ``(loss, stats)``, stats detached with ``"loss"``."""

    def __init__(self, net: ConditionalEnergy, loss: LossTerm):
        super().__init__()
        self.net, self.loss = net, loss

    def forward(self, x_pos: Tensor, c_pos: Tensor, x_neg: Tensor | None = None,
                c_neg: Tensor | None = None, c_wrong: Tensor | None = None,
                x_empty: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        batch = Batch(x_pos, c_pos, x_neg, c_neg, c_wrong, x_empty)
        e = self.energies(self.loss.rows(batch))
        loss, stats = self.loss.value(e, batch, self.net)
        stats["loss"] = loss
        return loss, {k: v.detach() for k, v in stats.items()}

    def energies(self, rows: Rows) -> dict[str, Tensor]:
        """``{block: E (N_block * R,)}`` for every block of ``rows``.

        A block's labels are ``(N, L)`` (one value per image) or ``(N, R, L)`` (R candidate
        values per image; its energies come image-major, as ``(N, R)`` flattened). A net
        with the split protocol (:func:`splits`: a late net) runs its trunk once over the
        distinct image tensors of all blocks (``"pos"`` and ``"wrong"`` share ``x_pos``) and
        its head per block: one batched call for the candidates. Any other net gets ONE full
        pass over all blocks concatenated, candidate images repeated (the pass is
        bit-identical to scoring each (image, value) row).
        """
        if not rows:
            return {}
        if splits(self.net):
            return self._split_energies(rows)
        xs, cs = zip(*(_flat(x, c) for x, c in rows.values()), strict=True)
        e = self.net(torch.cat(xs), torch.cat(cs))  # (sum of N_block * R,)
        return dict(zip(rows, e.split([x.shape[0] for x in xs]), strict=True))

    def _split_energies(self, rows: Rows) -> dict[str, Tensor]:
        images, slot = [], {}  # distinct image tensors, by identity
        for x, _ in rows.values():
            if id(x) not in slot:
                slot[id(x)] = len(images)
                images.append(x)
        feats = self.net.features(torch.cat(images)).split([x.shape[0] for x in images])
        return {name: self.net.energy_from_features(feats[slot[id(x)]], c).reshape(-1)
                for name, (x, c) in rows.items()}  # (N,) or (N, R) -> (N * R,)


def splits(net: nn.Module) -> bool:
    """Whether ``net`` overrides the split protocol of
    :class:`~conceptebm.energies.base.ConditionalEnergy` (``features`` +
    ``energy_from_features``), so its image trunk can run once per image.

    Example:
        >>> from conceptebm.concepts import Concept
        >>> from conceptebm.energies.late import LateEnergyNet
        >>> from conceptebm.energies.nets import ConvEnergyNet
        >>> pos = Concept.continuous("position", dim=2)
        >>> splits(ConvEnergyNet(pos, image_size=16, width=4)), splits(LateEnergyNet(pos))
        (False, True)
    """
    return (isinstance(net, ConditionalEnergy)
            and type(net).features is not ConditionalEnergy.features)


def _flat(x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """A block as rows of the full pass: ``(N, R, L)`` labels -> images repeated R times."""
    if c.dim() == 3:
        return x.repeat_interleave(c.shape[1], dim=0), c.reshape(-1, c.shape[-1])  # (N*R, ...)
    return x, c


class CDObjective(Objective):
    """Contrastive divergence with its optional terms (see :mod:`conceptebm.train.loss`):
    ``CD + l2 * L2 [+ contrastive_weight * T * CE_concept] [+ image_contrastive_weight * T *
    CE_image] [+ kl_weight * KL]``; a term with weight 0 is left out.

    Args:
        net: the conditional energy being trained.
        l2: L2 energy regularisation weight (on ``E+`` and ``E-``).
        kl_weight: weight of the improved-CD KL term (0 = off).
        contrastive_weight: weight of the concept-contrastive term (0 = off); needs
            ``c_wrong``.
        contrastive_temperature: its softmax temperature T, shared with the image term.
        image_contrastive_weight: weight of the image-contrastive term (0 = off).
        image_negatives: other images of the batch per label in that term (at most B - 1).
        step_size, bounds: the sampler step used by the KL term.
    """

    def __init__(self, net: ConditionalEnergy, *, l2: float = 0.1, kl_weight: float = 0.0,
                 contrastive_weight: float = 0.0, contrastive_temperature: float = 0.01,
                 image_contrastive_weight: float = 0.0, image_negatives: int = 7,
                 step_size: float = DEFAULT.step_size,
                 bounds: tuple[float, float] = IMAGE_BOUNDS):
        t = contrastive_temperature
        terms = [CDTerm(), L2Term(l2, ("pos", "neg"))]
        if contrastive_weight > 0:
            terms.append(ConceptContrastiveTerm(contrastive_weight, t))
        if image_contrastive_weight > 0:
            terms.append(ImageContrastiveTerm(image_contrastive_weight, t, image_negatives))
        if kl_weight > 0:
            terms.append(KLTerm(kl_weight, step_size, bounds))
        super().__init__(net, Sum(terms))


class ContrastiveObjective(Objective):
    """The concept-contrastive term alone plus L2 on every energy it scores:
    ``weight * T * CE(-E/T) + l2 * mean(E^2)`` over the true and the M wrong values of each
    real image. Needs ``c_wrong``; takes no negatives images. With ``weight = T = 1`` this is
    the recipe of the shipped ``position_contrastive`` (``CE + 0.01 * mean E^2``). ``empty``:
    also :class:`EmptyContrastiveTerm` (same weight and T; needs ``x_empty``), its energies
    in the L2 pool."""

    def __init__(self, net: ConditionalEnergy, *, l2: float = 0.01, weight: float = 1.0,
                 temperature: float = 1.0, empty: bool = False):
        terms = [ConceptContrastiveTerm(weight, temperature, report_energies=True)]
        if empty:
            terms.append(EmptyContrastiveTerm(weight, temperature))
        blocks = ("pos", "wrong", "empty") if empty else ("pos", "wrong")
        super().__init__(net, Sum([*terms, L2Term(l2, blocks, pooled=True)]))


def make_objective(config, net: ConditionalEnergy) -> Objective:
    """The objective ``config.objective`` names (a :class:`~conceptebm.train.TrainConfig`)."""
    if config.objective == "cd":
        return CDObjective(net, l2=config.l2, kl_weight=config.kl_weight,
                           contrastive_weight=config.contrastive_weight,
                           contrastive_temperature=config.contrastive_temperature,
                           image_contrastive_weight=config.image_contrastive_weight,
                           image_negatives=config.image_negatives, step_size=config.step_size)
    if config.objective == "contrastive":
        return ContrastiveObjective(net, l2=config.l2, weight=config.contrastive_weight,
                                    temperature=config.contrastive_temperature,
                                    empty=config.empty_negatives > 0)
    raise ValueError(f"objective must be one of {OBJECTIVES}, got {config.objective!r}")
