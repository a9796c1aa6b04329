"""The paper's experiments as scripts: ``python -m paper.benchmarks.<name> --help``.

Scripts, not a library: nothing imports them (``tests/test_benchmarks_thin.py``).
"""
