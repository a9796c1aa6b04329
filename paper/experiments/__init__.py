"""The paper's multi-stage experiments, as library code the benchmarks call.

* ``continual``: section 4.3 (Table 2, Figure 8): concepts learned one after another, each new
  EBM trained inside a sampler that also sums the frozen earlier ones; a GAN baseline on the
  same stages.
* ``cross_product``: section 4.4 (Figures 9-10): a position EBM and a size EBM trained on
  different slices of the data, composed at held-out (position, size) combinations, against a
  holistic decoder.

Each module keeps its own ``__all__``; import from the module.
"""
