"""conceptebm.datasets (in progress)."""
