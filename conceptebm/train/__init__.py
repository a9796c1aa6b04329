"""conceptebm.train (in progress)."""
