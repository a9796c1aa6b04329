"""conceptebm.evaluate (in progress)."""
