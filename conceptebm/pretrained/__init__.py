"""Shipped small checkpoints (safetensors + JSON)."""
