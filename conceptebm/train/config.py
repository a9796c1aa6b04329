"""``TrainConfig``: every setting of a contrastive-divergence run, with its meaning.

Defaults are a CPU recipe (what trains a concept EBM in minutes on one core): low-frequency
noise init, replay buffer, step 100 with noise 0.005, K = 20, batch 32, Adam 5e-4 with
betas (0, 0.999), L2 energy penalty 0.1.
:func:`smoke_config` is the tiny preset the tests and ``--smoke`` run.

Example:
    >>> cfg = TrainConfig(concept="color", iterations=500)
    >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

__all__ = ["TrainConfig", "make_config", "smoke_config", "LABEL_POLICIES", "LR_SCHEDULES",
           "OBJECTIVES", "CONTRASTIVE_RECIPE", "DATA_RECIPE", "PRESETS", "RECIPE_OPTIONS"]

LABEL_POLICIES = ("current", "stored")
OBJECTIVES = ("cd", "contrastive")  # train/objective.py builds each
#: the allowed values of text fields, for the generated command-line options
#: net families: "conv" (ConvEnergyNet: c enters at the input) or "late" (LateEnergyNet:
#: image features once per image, a small head per concept value: fast concept inference)
NETS = ("conv", "late")
FIELD_CHOICES = {"objective": OBJECTIVES, "net": NETS}
MAX_NEGATIVES = 1024  # wrong values (or object-free images) per real image, each kind
#: upper bounds on sizes that would otherwise fail as "memory ran out" after a long start
MAX_BATCH = 8192  # real images per update, per process (more: more processes under DDP)
MAX_IMAGE_SIZE = 1024  # pixels a side
MAX_WIDTH = 1024  # first-layer channels
LR_SCHEDULES = ("constant", "cosine")
SAMPLER_INITS = ("smooth", "uniform")
DOWNSAMPLES = ("stride", "pool")
HEADS = ("flatten", "pool")
#: model options only the conv net reads, with their defaults (refused, not ignored, for "late")
CONV_ONLY = {"spectral_norm": False, "downsample": "stride", "head": "flatten",
             "hue_invariant": False, "hue_agreement": False, "pixel_prior": False}


@dataclass
class TrainConfig:
    # ---- data --------------------------------------------------------------------------
    concept: str = "position"  # concept the EBM is conditioned on (a key of dataset.concepts)
    dataset: str = ""  # dataset name for make_dataset; "" = the concept's own dataset
    dataset_size: int = 100_000  # scenes; item i is a pure function of (seed, i)
    image_size: int = 32  # H = W of the scenes and of the net
    seed: int = 0  # seeds the data order, sampler noise and buffer; data uses seed too
    # ---- model (see conceptebm.energies.nets.ConvEnergyNet) -----------------------------
    net: str = "conv"  # "conv" (ConvEnergyNet) or "late" (LateEnergyNet; reads width and
    #                    center_input, the other model options are the conv net's)
    width: int = 16  # first-layer channels (~80k parameters at 16)
    blocks: int = 0  # optional residual blocks per level (0: the prototype's plain net)
    embed_dim: int = 64  # label embedding width for FiLM
    spectral_norm: bool = False  # official code: on; prototype: not needed at this size
    center_input: bool = False  # pixels as 2x-1: needed to learn shape (see ConvEnergyNet)
    downsample: str = "stride"  # "stride" (4x4/2 convs) or "pool" (3x3 conv + 2x2 avg pool)
    head: str = "flatten"  # "flatten" (a weight per place) or "pool" (averaged over space:
    #                        what is learnt in one region carries to others)
    hue_invariant: bool = False  # the net sees value and chroma, not the colour: what it
    #                              learns on one colour carries to the others (ConvEnergyNet)
    hue_agreement: bool = False  # with hue_invariant: also how each pixel's colour agrees with
    #                              its neighbours' (one colour per object, not which)
    pixel_prior: bool = False  # an unconditional per-pixel colour energy (1x1 convs) added
    #                            to the net: the data's hues, never its shapes (ConvEnergyNet)
    late_context: bool = False  # late net: its head also reads the feature map's spatial
    #                             mean (a little global context; LateEnergyNet context)
    init_weights: str = ""  # checkpoint whose weights start the net (same net config), e.g.
    #                         a discriminative start from benchmarks/multiview_model.py
    # ---- optimisation ------------------------------------------------------------------
    iterations: int = 2000  # parameter updates in total (a resumed run continues to this)
    batch_size: int = 32  # real images per update (per process under DDP)
    lr: float = 5e-4  # Adam learning rate
    betas: tuple[float, float] = (0.0, 0.999)  # beta1 = 0 as in the official code
    lr_schedule: str = "constant"  # "constant" or "cosine" (decays to lr * lr_min_ratio)
    lr_min_ratio: float = 0.1  # final lr fraction of the cosine schedule
    grad_clip: float | None = None  # global L2 norm limit on parameter gradients
    ema: float | None = 0.999  # EMA decay of the weights used for evaluation (None = off)
    # ---- loss (eq. 2 plus regularisers; train/objective.py) ----------------------------
    objective: str = "cd"  # "cd": contrastive divergence (eq. 2) with the terms below;
    #                        "contrastive": the concept-contrastive term (weight
    #                        contrastive_weight) + l2 on every energy it scores, no sampler, no
    #                        buffer: an inference-only model; the CLI and make_config start it
    #                        from CONTRASTIVE_RECIPE (lr 1e-3, betas 0.9, l2 0.01, weight 1, T 1)
    l2: float = 0.1  # lambda * (E+^2 + E-^2) keeps energies near 0 (official: 1.0)
    kl_weight: float = 0.0  # improved-CD KL term through one differentiable sampler step
    contrastive_weight: float = 0.0  # concept-contrastive cross-entropy on real images
    contrastive_negatives: int = 7  # wrong concept values per real image (continuous)
    contrastive_temperature: float = 0.01  # softmax temperature on energies (loss: T * CE)
    image_contrastive_weight: float = 0.0  # for a label, its real image against other real
    #                                        images of the batch (ranks images, as generation
    #                                        needs; the term above ranks labels)
    image_negatives: int = 7  # other batch images per label in that term
    contrastive_near_negatives: int = 0  # extra wrong values per real image drawn NEAR the
    #                                      true one (continuous concepts): hard negatives that
    #                                      sharpen the ranking where MAP refinement looks
    contrastive_near_scale: float = 0.1  # how near: at most this fraction of the range away
    #                                      (at least a fifth of it)
    empty_negatives: int = 0  # objective "contrastive": object-free images per update (renders
    #                           of the empty ground, half of them; pixel noise, flat colours),
    #                           augmented as the real ones; each real image under its true
    #                           value must score lower than every one of them under that value
    #                           (the same cross-entropy): what teaches a reader to say "no
    #                           object found" (the wrong values alone never show it one)
    # ---- real-image augmentation (off by default; none moves the object) ---------------
    augment_noise: float = 0.0  # Gaussian pixel noise, sigma ~ U(0, this) per image
    augment_blur: float = 0.0  # Gaussian blur on half the images, sigma ~ U(0, this) pixels
    augment_jitter: float = 0.0  # brightness and contrast x U(1 - j, 1 + j) per image (the same
    #                              for all channels; changes shading, so not for color/shade)
    # ---- data schedule -----------------------------------------------------------------
    n_views: int = 0  # views per scene of the "multiview" dataset (0: its default)
    curriculum: int = 0  # the first iterations draw from curriculum_dataset instead (easy
    #                      scenes first: contrastive training on multi-view scenes can sit at
    #                      chance for a seed-dependent time; 300 default-camera its removed that)
    curriculum_dataset: str = "position"  # dataset of those first iterations
    # ---- training sampler (Langevin negatives, conceptebm.infer.langevin_step) ---------
    sampler_steps: int = 20  # K Langevin steps per update
    step_size: float = 100.0  # on the raw gradient
    noise_scale: float = 0.005  # std of the Gaussian noise per step
    init: str = "smooth"  # chain init for fresh chains: "smooth" (4x4 upsampled) or "uniform"
    # ---- replay buffer -----------------------------------------------------------------
    buffer_size: int = 10_000  # 0 = no buffer (every chain starts from fresh noise)
    reinit_prob: float = 0.05  # chance a chain restarts from fresh noise
    label_policy: str = "current"  # "current": continue under the batch's label (official);
    #                                "stored": keep the label the sample was made under
    # ---- evaluation, checkpoints, guard ------------------------------------------------
    eval_every: int = 200  # iterations between judge scorings (0 = never)
    eval_samples: int = 100  # generations scored per evaluation
    eval_steps: int = 40  # Langevin steps for those generations (test time: 2x K)
    eval_inference: bool = False  # also score MAP inference of the concept on real images;
    #                               the best checkpoint then maximises the mean of both scores
    eval_grid: int = 9  # grid points per coordinate that start that MAP inference (then
    #                     eval_map_steps Adam steps); 9 is cheap, 17 is what infer uses: a model
    #                     trained with near negatives has narrow basins that a 9-grid misses
    #                     (measured: MAE 0.18 at 9, 0.021 at 17, same model)
    eval_map_steps: int = 30  # Adam steps refining that MAP inference from the best grid point
    snapshot_every: int = 0  # iterations between weights-only snapshots (0 = none), for
    #                          re-scoring candidates with more samples after training
    checkpoint_every: int = 100  # iterations between resumable checkpoints
    log_every: int = 10  # iterations between metrics rows
    max_abs_energy: float = 1e3  # divergence guard: mean |E| above this stops the run
    time_limit_min: float | None = None  # stop (with a checkpoint) after this many minutes
    device: str = "cpu"  # any torch device string
    channels_last: bool = True  # conv weights (and so activations) in NHWC memory order:
    #                             same run to float rounding; position CD recipe updates
    #                             1.065x faster on this CPU (0.159 vs 0.169 s/it, one thread,
    #                             benchmarks/train_speed.py; 1.14x before the sampler chain
    #                             dropped the weights' grads);
    #                             CONTRASTIVE_RECIPE turns it off (no faster there)
    out_dir: str = "runs/position"  # checkpoints, metrics.csv, loss.png
    frozen: list[str] = field(default_factory=list)  # continual learning: earlier EBMs
    #          (checkpoint paths or pretrained names) summed into the sampler, no gradient
    frozen_weights: list[float] = field(default_factory=list)  # a weight > 0 per frozen
    #          EBM in the sampler's sum (after step matching); empty: every weight 1

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)
        self.frozen = list(self.frozen)
        self.frozen_weights = [float(w) for w in self.frozen_weights]
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting and what is allowed."""
        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                raise ValueError(f"TrainConfig.{name} {rule}, got {getattr(self, name)!r}")

        for name in ("dataset_size", "iterations", "batch_size", "sampler_steps", "width",
                     "embed_dim", "image_size"):
            need(int(getattr(self, name)) == getattr(self, name) and getattr(self, name) >= 1,
                 name, "must be an integer >= 1")
        for name in ("buffer_size", "eval_every", "checkpoint_every", "blocks",
                     "contrastive_negatives", "snapshot_every", "image_negatives",
                     "contrastive_near_negatives", "n_views", "curriculum",
                     "empty_negatives"):
            need(int(getattr(self, name)) == getattr(self, name) and getattr(self, name) >= 0,
                 name, "must be an integer >= 0")
        for name, most, why in (("batch_size", MAX_BATCH, "per process; run more processes "
                                 "with torchrun for a larger global batch"),
                                ("image_size", MAX_IMAGE_SIZE, "pixels a side"),
                                ("width", MAX_WIDTH, "first-layer channels")):
            need(getattr(self, name) <= most, name, f"must be at most {most} ({why})")
        for name in ("contrastive_negatives", "contrastive_near_negatives", "image_negatives",
                     "empty_negatives"):  # per real image: a batch grows by this factor
            need(getattr(self, name) <= MAX_NEGATIVES, name,
                 f"must be at most {MAX_NEGATIVES} (each real image's batch grows by it)")
        need(self.log_every >= 1, "log_every", "must be >= 1")
        for name in ("lr", "step_size", "max_abs_energy", "contrastive_temperature"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and math.isfinite(v) and v > 0, name,
                 "must be a finite number > 0")
        for name in ("l2", "kl_weight", "contrastive_weight", "image_contrastive_weight",
                     "noise_scale", "augment_noise", "augment_blur", "augment_jitter"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0, name,
                 "must be a finite number >= 0")
        need(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas",
             "must be two numbers in [0, 1)")
        need(0 <= self.reinit_prob <= 1, "reinit_prob", "must lie in [0, 1]")
        need(self.label_policy in LABEL_POLICIES, "label_policy",
             f"must be one of {LABEL_POLICIES}")
        need(self.objective in OBJECTIVES, "objective", f"must be one of {OBJECTIVES}")
        need(self.lr_schedule in LR_SCHEDULES, "lr_schedule", f"must be one of {LR_SCHEDULES}")
        need(0 < self.lr_min_ratio <= 1, "lr_min_ratio", "must lie in (0, 1]")
        need(self.downsample in DOWNSAMPLES, "downsample", f"must be one of {DOWNSAMPLES}")
        need(self.head in HEADS, "head", f"must be one of {HEADS}")
        need(self.net in NETS, "net", f"must be one of {NETS}")
        conv_only = [f"{n}={getattr(self, n)!r}" for n, default in CONV_ONLY.items()
                     if getattr(self, n) != default]
        need(self.net != "late" or not conv_only, "net",
             f"must be 'conv' with the conv net's options {', '.join(conv_only)} (a late net "
             "does not read them: drop them)")
        need(self.net == "late" or not self.late_context, "late_context",
             "is an option of the late net: pass --net late too")
        need(not self.hue_agreement or self.hue_invariant, "hue_agreement",
             "extends hue_invariant: pass --hue-invariant too")
        need(self.init in SAMPLER_INITS, "init", f"must be one of {SAMPLER_INITS}")
        need(self.ema is None or 0 < self.ema < 1, "ema", "must be None or lie in (0, 1)")
        need(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be None or > 0")
        need(self.time_limit_min is None or self.time_limit_min > 0, "time_limit_min",
             "must be None or > 0")
        need(self.eval_every == 0 or (self.eval_samples >= 1 and self.eval_steps >= 1),
             "eval_samples", "and eval_steps must be >= 1 when eval_every > 0")
        need(self.image_contrastive_weight == 0 or self.image_negatives >= 1, "image_negatives",
             "must be >= 1 when image_contrastive_weight > 0")
        need(self.contrastive_weight == 0 or
             self.contrastive_negatives + self.contrastive_near_negatives >= 1,
             "contrastive_negatives", "(plus contrastive_near_negatives) must be >= 1 when "
             "contrastive_weight > 0")
        need(self.objective != "contrastive" or self.contrastive_weight > 0,
             "contrastive_weight", "must be > 0 under objective 'contrastive' (it is that "
             "objective's only term; make_config(objective='contrastive') starts from 1)")
        need(self.empty_negatives == 0 or self.objective == "contrastive", "empty_negatives",
             "is a term of the concept-contrastive objective: pass --objective contrastive")
        need(0 < self.contrastive_near_scale <= 1, "contrastive_near_scale",
             "must lie in (0, 1] (a fraction of the concept's range)")
        need(self.augment_jitter < 1, "augment_jitter", "must lie in [0, 1)")
        need(not self.frozen_weights or len(self.frozen_weights) == len(self.frozen),
             "frozen_weights", f"must give one weight per frozen EBM ({len(self.frozen)})")
        need(all(math.isfinite(w) and w > 0 for w in self.frozen_weights), "frozen_weights",
             "must be finite numbers > 0")
        need(int(self.eval_grid) == self.eval_grid and self.eval_grid >= 2, "eval_grid",
             "must be an integer >= 2")
        need(int(self.eval_map_steps) == self.eval_map_steps and self.eval_map_steps >= 0,
             "eval_map_steps", "must be an integer >= 0")

    @property
    def dataset_name(self) -> str:
        return self.dataset or self.concept

    def net_config(self) -> dict:
        """Keyword options of :class:`~conceptebm.energies.nets.ConvEnergyNet`."""
        return {"image_size": self.image_size, "width": self.width, "blocks": self.blocks,
                "embed_dim": self.embed_dim, "spectral_norm": self.spectral_norm,
                **({"center_input": True} if self.center_input else {}),
                **({"downsample": self.downsample} if self.downsample != "stride" else {}),
                **({"head": self.head} if self.head != "flatten" else {}),
                **({"hue_invariant": True} if self.hue_invariant else {}),
                **({"hue_agreement": True} if self.hue_agreement else {}),
                **({"pixel_prior": True} if self.pixel_prior else {})}

    def build_net(self, concept):
        """A fresh net of family ``net`` for ``concept``, with this config's model options."""
        from conceptebm.energies.late import LateEnergyNet
        from conceptebm.energies.nets import ConvEnergyNet

        if self.net == "late":
            return LateEnergyNet(concept, image_size=self.image_size, width=self.width,
                                 center_input=self.center_input, context=self.late_context)
        return ConvEnergyNet(concept, **self.net_config())

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig settings {unknown}; known: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


#: The defaults ``objective="contrastive"`` starts from (:func:`make_config`, the CLI): the
#: recipe that made the shipped ``position_contrastive`` (Adam 1e-3 with beta1 0.9, L2 0.01
#: on every energy, the true value against 7 uniform wrong ones at temperature 1, no EMA, no
#: buffer). The best checkpoint is chosen by MAP inference on held-out images (generations
#: of a contrastive-only model are not images, so judges have nothing to read), started from
#: the 17-point grid that ``infer`` uses.
CONTRASTIVE_RECIPE = {"lr": 1e-3, "betas": (0.9, 0.999), "l2": 0.01, "contrastive_weight": 1.0,
                      "contrastive_temperature": 1.0, "ema": None, "buffer_size": 0,
                      "eval_grid": 17, "channels_last": False}  # NHWC: no faster here (1.01x),
#                                                   and the default order keeps this recipe
#                                                   bit-identical to the one that made the model
_RECIPES = {"cd": {}, "contrastive": CONTRASTIVE_RECIPE}

#: What ``conceptebm train --data DIR`` trains a 2-D continuous concept (a position) with when
#: no recipe flag (``--preset``, ``--config``, ``--objective``, ``--net`` or a conv-net option)
#: is given: an inference reader for a stranger's images. Chosen on the held-out splits of
#: image sources and measured once each on others (``benchmarks/data_defaults.py``,
#: ``benchmarks/results/data_defaults.json``, the train guide's table): the late net (one
#: trunk pass per image), the concept-contrastive objective with 15 uniform and 8 near wrong
#: values, pixel noise, blur and brightness jitter on the real images (1,700 images are learnt
#: by heart without them),
#: a cosine learning rate over 3,000 iterations (about 7 minutes on one free core; the
#: candidates were compared at 1,500, then 3,000 against 1,500 on two validation sources:
#: 0.027 / 0.018 against 0.040 / 0.030; ``--time-limit-min`` stops it earlier, and the
#: held-out split keeps the best checkpoint either way).
DATA_RECIPE = {"objective": "contrastive", **CONTRASTIVE_RECIPE, "net": "late",
               "contrastive_negatives": 15, "contrastive_near_negatives": 8,
               "augment_noise": 0.1, "augment_blur": 1.0, "augment_jitter": 0.2,
               "lr_schedule": "cosine", "lr_min_ratio": 0.05, "iterations": 3000,
               "eval_every": 250}
#: Named recipes (``conceptebm train --preset NAME``; explicit options override them):
#: ``cd`` the generative contrastive-divergence recipe of the field defaults (the shipped
#: generation models), ``position_contrastive`` the concept-contrastive recipe of the shipped
#: reader of that name (:data:`CONTRASTIVE_RECIPE`, conv net), ``data`` :data:`DATA_RECIPE`.
PRESETS = {"cd": {"objective": "cd"},
           "position_contrastive": {"objective": "contrastive", **CONTRASTIVE_RECIPE},
           "data": DATA_RECIPE}
#: options that choose a recipe: given any of them, ``train --data`` keeps the field defaults
RECIPE_OPTIONS = ("objective", "net", *CONV_ONLY)


def make_config(**settings) -> TrainConfig:
    """A :class:`TrainConfig` whose unset fields take the defaults of its ``objective``
    (:data:`CONTRASTIVE_RECIPE` for ``"contrastive"``, the field defaults for ``"cd"``).

    Example:
        >>> make_config(objective="contrastive", iterations=1500).lr
        0.001
        >>> make_config(iterations=1500).lr
        0.0005
    """
    objective = settings.get("objective", "cd")
    if objective not in _RECIPES:
        raise ValueError(f"TrainConfig.objective must be one of {OBJECTIVES}, got {objective!r}")
    return TrainConfig(**{**_RECIPES[objective], **settings})


def smoke_config(**overrides) -> TrainConfig:
    """A run that finishes in seconds (tiny net, a few iterations, small batches), with the
    defaults of ``overrides["objective"]`` (:func:`make_config`)."""
    base = dict(image_size=32, width=4, blocks=1, embed_dim=8, dataset_size=256, iterations=6,
                batch_size=8, sampler_steps=3, buffer_size=64, eval_every=3, eval_samples=8,
                eval_steps=3, checkpoint_every=3, log_every=1)
    recipe = _RECIPES.get(overrides.get("objective", "cd"), {})
    return make_config(**{**base, **recipe, **overrides})
