"""The reproduction of *Compositional Visual Generation with Energy Based Models* (Du, Li &
Mordatch, NeurIPS 2020) with conceptebm: the experiments' protocols, the baselines the paper
compares against, the benchmark scripts, their checkpoints and results.

Not installed with the package (the wheel holds ``conceptebm`` only) and never imported by
it: run the scripts from the repository root, ``python -m paper.benchmarks.<name>``. How every
reported number is chosen and read is in ``paper/PROTOCOL.md``; the tables are in
``paper/RESULTS.md``.
"""
