"""Default composition constants for calibrated composition (units of the energy gap).

With every concept energy scaled to the composition's reference gap (see
:mod:`conceptebm.compose.calibrate`), one set of constants serves all models:

* ``TEMPERATURE``: disjunction temperature in units of the reference gap. Much below 1, so
  ``-T logsumexp(-E_i / T)`` acts as a soft minimum over the branches: the prototype needed
  T ~ 0.1 x the energy spread, far below the paper's T = 1 (cpu-prototype.md, failure 4).
* ``ALPHA``: negation weight (eq. 9).

The values are chosen by the sweep in ``benchmarks/compose_sweep.py`` (see README).
"""

TEMPERATURE = 0.1
ALPHA = 0.1
