"""Non-EBM generators the paper compares against, trained on the same data as the EBMs.

* ``gan``: a conditional DCGAN-style generator and discriminator trained on a sequence of
  datasets (the continual-learning baseline, paper Table 2).
* ``decoder``: a holistic deterministic decoder conditioned on every concept at once and
  trained with mean squared error to the real image (the cross-product baseline, Figure 10).

Each module keeps its own ``__all__``; import from the module (``paper.baselines.gan``).
"""
