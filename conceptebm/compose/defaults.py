"""Default constants of calibrated composition, chosen by measurement.

* ``CALIBRATION_POWER``: each concept energy is weighted by ``(ref / gap) ** p``
  (:mod:`conceptebm.compose.calibrate`). p = 1 equalises the measured energy gaps, p = 0 is the
  paper's raw sum. On the shipped position / color models (gaps 0.0115 / 0.0030, n = 100,
  ``paper/benchmarks/compose_table.py --rows pos_and_color --calibration-power P``): p = 0 gave
  position / color accuracy 1.00 / 0.70, p = 0.25 1.00 / 0.78, p = 0.5 0.99 / 0.80,
  p = 0.75 0.93 / 0.87, p = 1 0.75 / 0.91. p = 0.5 balances the two.
* ``STEPS``: Langevin steps for compositions. A conjunction has to satisfy several models from
  the same noise; 100 steps gave 0.96 / 0.90 against 0.99 / 0.80 at 60 (p = 0.5); 200 steps let
  color win over position (0.60 / 0.98 at p = 1).
* ``TEMPERATURE``: disjunction temperature in units of the reference gap, for Langevin on the
  soft-min energy (eq. 8). Far below 1 so ``-T logsumexp(-E_i/T)`` is a soft minimum: trained
  energies differ by ~0.01 between right and wrong concepts, so T = 1 makes a disjunction act
  like a conjunction. Top-level disjunctions are sampled as the
  mixture they define by default (:func:`conceptebm.compose.generate.choose_branches`).
* ``MULTI_INSTANCE``: the shipped model that serves a concept a conjunction asks for at several
  values (several objects, Figure 7), and the composition then samples with that model's own
  settings. The shipped "position" was trained with the concept-contrastive term, which
  teaches "the object is at c": for Pos1 AND Pos2 it draws one object (both targets found in
  0.03 of images). "position_cd", the same recipe by CD alone, draws two: both found in
  0.777 +- 0.024 at its own 40 steps, 0.743 at 60, 0.66 at the 100 steps of ``STEPS``, 0.56 at
  200 (more steps let one object absorb the other); alternating steps between the two
  energies (the official code's two-cube figure) gave 0.615 at 100 steps (n = 200-300,
  ``paper/benchmarks/compose_table.py --extras --rows two_objects``).
* ``ALPHA``: negation weight (eq. 9), on calibrated energies. Position AND NOT Color on the
  shipped models (n = 200-500, ``--rows pos_and_not_color --alpha A``): alpha 0.03 gave
  position / negated-color rate 0.995 / 0.085, 0.05 gave 0.945 / 0.040, 0.1 gave 0.620 / 0.032,
  0.3 gave 0.115 / 0.005. 0.05 is the largest weight that keeps the position.
* ``NEGATION_WEIGHT``: weight of a negation through the classifier (``--negation
  classifier``, :class:`conceptebm.energies.NotAny`), times the concept's calibration weight.
  n = 200 (``paper/benchmarks/compose_table.py --negation classifier --negation-weight W``):
  Position AND NOT Color, W = 1 / 3 / 10: position 1.000 each, negated colour 0.050 / 0.030 /
  0.030; the implication row (``--extras --rows implication``): colour 0.385 / 0.175 / 0.120,
  position 0.395 / 0.195 / 0.050; the implication with the position once
  (``--rows implication_once``), W = 1 / 3 / 5 / 10: colour 0.635 / 0.755 / 0.600 / 0.405,
  position 0.995 / 0.925 / 0.870 / 0.540. 1 keeps every position and NOT Color at 0.05; 3
  buys implication colour (+0.12) for position (-0.07). The same weight 1 serves ``--negation
  complement`` (a negation read as the values left, ``closed_world``), n = 500: Position AND
  NOT Color 0.994 / 0.000, NOT Position AND Color 0.048 / 0.976, the implication with the
  position once 1.000 / 1.000 (``paper/benchmarks/compose_table.py --negation complement``).
"""

CALIBRATION_POWER = 0.5
STEPS = 100
TEMPERATURE = 0.1
ALPHA = 0.05
NEGATION_WEIGHT = 1.0
MULTI_INSTANCE = {"position": "position_cd"}
