"""Continual learning (paper section 4.3, Table 2, Figure 8) as library code.

Three stages, each a dataset and a concept (:data:`STAGES`):

1. ``position`` on ``continual_position`` (purple cubes at uniform positions);
2. ``shape`` on ``continual_shape`` with ``shapes=("cube", "sphere")`` (the paper's box and
   sphere, purple), trained inside a sampler that also sums the frozen stage-1 EBM;
3. ``color`` on ``continual_color`` (every colour, cubes and spheres), with both earlier EBMs
   frozen.

**How the frozen models enter.** Stage k trains only the new concept's EBM through
:func:`conceptebm.train.train` with ``TrainConfig.frozen`` = the exported checkpoints of the
earlier stages (their EMA weights, as selected by the in-loop judge score). Every training
negative is a short-run Langevin chain (K steps, the new EBM's step: 100 for position and
colour, 1 for shape; noise 0.005, replay buffer) on ``E_new(x | c_new) + sum_j w_j E_j(x | c_j)``,
with every ``c`` read off the same real batch (our datasets label every concept in every
stage) and ``w_j`` = E_j's own step / the chain's (:func:`conceptebm.train.match_steps`: the
chain moves each frozen EBM as its own sampler did; 1 when the steps agree), times, with
``train_as_selected``, E_j's weight in the composition stage k - 1 chose (below;
:func:`frozen_weights`; on by default: measured better with the hue-agreement shape EBM,
no better with the RGB one); the loss scores E_new
alone; the frozen nets are in eval mode with ``requires_grad=False`` and outside the
optimizer. Generation composes them the same way, with the newest EBM's sampler.

**How the conjunction is weighted.** EBMs trained apart have arbitrary energy scales; the raw
sum (the paper's, row ``ebm``) lets the steepest win. After stage k, each calibration power
``p`` in a grid (weights ``(ref / gap_i) ** p``, gaps measured on real scenes of the stage;
``p = 0`` is the raw sum) generates for 200 validation targets, and the one with the most
generations right on every concept at once is judged on the test targets (row
``ebm_selected``, :func:`select_composition`, :func:`stage_selection`).

**Evaluation.** After stage k, ``n`` targets are drawn from held-out scenes of stage k's
dataset (uniform positions; cube or sphere; any colour in stage 3): one generation per target
from the conjunction of the k EBMs (fresh low-frequency noise, the stages' test-time
sampler), read by the shipped judges: position accuracy within 0.4 (the paper's), shape and
colour accuracy, with binomial standard errors; a generation that shows no object is wrong.
Shape is also read by a second reader (:func:`read_shapes`), and the readers by themselves
on the targets' real scenes (``real.*``).

**The GAN baseline** (:mod:`paper.baselines.gan`): one conditional GAN trained on the
same three datasets in sequence, one ``fit`` per stage, weights and Adam states carried on,
judged on the same targets. Each stage gets the EBM stage's training minutes as its budget
(counted in process CPU time, ``gan_clock``; ``gan_budget_ratio`` 1.0), and is chosen as the
EBMs' compositions are: snapshots judged on the validation targets every
``gan_check_minutes``, the one with the most generations right on every judged concept kept
(:func:`train_gan_stage`); the next stage goes on from it. Two ways for
labels to enter (:data:`GAN_VARIANTS`):
``"all"`` conditions stage k on every concept seen so far, read off the batch (what the EBMs
use: the frozen ones are fed the batch's labels); ``"paper"`` conditions stage k on its own
concept only, as the paper's baseline, so it cannot be told what earlier stages taught.

Resumable: a stage whose exported checkpoint exists is reused, an interrupted EBM stage
resumes from its run's ``last.safetensors`` (the loop checkpoints every 100 iterations), and
a GAN stage whose checkpoint exists is reused.

Modules, each importing only those above it: ``settings`` (stages, seeds,
:class:`ContinualSettings`, targets), ``readers`` (a second reader of shape), ``selection``
(calibration weights, the composition chosen on validation, generation as chosen),
``training`` (an EBM or GAN stage), ``run`` (the protocol, Figure 8, JSON). Every public name
is importable from here.

Example (``run_continual(ContinualSettings.quick_settings(out_dir=...))`` runs the whole
protocol on tiny nets in seconds; ``tests/experiments`` does):
    >>> s = ContinualSettings()
    >>> cfg = stage_config(3, s, frozen=["stage1.safetensors", "stage2.safetensors"])
    >>> cfg.concept, cfg.dataset, cfg.frozen
    ('color', 'continual_color', ['stage1.safetensors', 'stage2.safetensors'])
    >>> gan_given(3, "all"), gan_given(3, "paper")
    (('position', 'shape', 'color'), ('color',))
"""

from paper.experiments.continual.readers import TRANSFER_SCENES, read_shapes, shape_transfer
from paper.experiments.continual.run import (
    ACCURACY_MODELS,
    plot_accuracy,
    plot_figure8,
    run_continual,
    write_json,
)
from paper.experiments.continual.selection import (
    calibration_weights,
    compose_images,
    evaluate_ebm,
    frozen_weights,
    select_composition,
    select_denoise,
    stage_gaps,
    stage_images,
    stage_selection,
)
from paper.experiments.continual.settings import (
    EVAL_SEED,
    GAN_VARIANTS,
    JUDGED,
    SELECT_SEED,
    SHAPES,
    STAGES,
    STARTS,
    ContinualResult,
    ContinualSettings,
    Stage,
    eval_targets,
    gan_given,
    stage_config,
    start_config,
)
from paper.experiments.continual.training import (
    evaluate_gan,
    gan_budget_minutes,
    train_ebm_stage,
    train_gan_stage,
)

__all__ = ["Stage", "STAGES", "SHAPES", "GAN_VARIANTS", "STARTS", "JUDGED", "EVAL_SEED",
           "SELECT_SEED", "ContinualSettings", "ContinualResult", "stage_config", "start_config",
           "gan_given", "eval_targets", "train_ebm_stage", "train_gan_stage", "evaluate_gan",
           "gan_budget_minutes", "select_denoise",
           "stage_gaps", "calibration_weights", "compose_images", "evaluate_ebm",
           "select_composition", "stage_selection", "stage_images", "frozen_weights",
           "read_shapes", "shape_transfer", "TRANSFER_SCENES", "run_continual", "plot_figure8",
           "plot_accuracy", "ACCURACY_MODELS", "write_json"]
