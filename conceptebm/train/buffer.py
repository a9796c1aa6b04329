"""Replay buffer of Langevin negatives, storing ``(x, c)`` pairs (Du & Mordatch 2019).

Chains of one update start from buffer samples, except a fraction ``reinit_prob`` that
restart from fresh noise; their final states go back into the buffer (a FIFO ring). Images are
stored as uint8, as in the official code, and read back with uniform dequantisation noise
within each value's rounding cell.

The *label policy* says under which concept value a replayed chain continues:

* ``"current"`` (the official code's policy): under the current batch's label, whatever the
  stored sample was made under. A chain often starts from a sample of another concept value;
  the stored label is ignored.
* ``"stored"``: under the label stored with the sample, so a chain keeps improving one
  concept value. Fresh chains take the current batch's labels.

The buffer's contents go into checkpoints as plain tensors (:meth:`state`), never
pickled, so a resumed run continues with the same negatives.

Example:
    >>> buf = ReplayBuffer(100, reinit_prob=0.05, label_policy="stored")
    >>> g = torch.Generator().manual_seed(0)
    >>> c = torch.rand(8, 2)
    >>> x0, c0 = buf.sample(torch.rand(8, 3, 16, 16), c, generator=g)  # empty: fresh noise
    >>> buf.push(x0, c0); len(buf)
    8
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ReplayBuffer"]


class ReplayBuffer:
    """A FIFO ring of ``capacity`` samples ``x`` in [0, 1] (images ``(C, H, W)``, or any event
    shape) with concept encodings ``c (L,)``.

    Args:
        capacity: maximum number of stored samples (> 0).
        reinit_prob: probability that a chain starts from the fresh noise passed to
            :meth:`sample` instead of a stored sample.
        label_policy: ``"current"`` or ``"stored"`` (see the module docstring).
    """

    def __init__(self, capacity: int, *, reinit_prob: float = 0.05,
                 label_policy: str = "current"):
        if int(capacity) != capacity or capacity < 1:
            raise ValueError(f"ReplayBuffer capacity must be an integer >= 1, got {capacity!r}")
        if not 0 <= reinit_prob <= 1:
            raise ValueError(f"reinit_prob must lie in [0, 1], got {reinit_prob}")
        if label_policy not in ("current", "stored"):
            raise ValueError(f"label_policy must be 'current' (continue under the batch's "
                             f"label) or 'stored' (keep the sample's label), got {label_policy!r}")
        self.capacity = int(capacity)
        self.reinit_prob = float(reinit_prob)
        self.label_policy = label_policy
        self.x: Tensor | None = None  # (capacity, C, H, W) uint8
        self.c: Tensor | None = None  # (capacity, L) float32
        self.count = 0  # filled slots
        self.ptr = 0  # next slot to overwrite

    def __len__(self) -> int:
        return self.count

    def sample(self, fresh: Tensor, c: Tensor, *, generator=None) -> tuple[Tensor, Tensor]:
        """Initial chains and their labels for one update.

        Args:
            fresh: ``(B, *event)`` fresh-noise inits in [0, 1] (used for re-initialised chains and
                while the buffer is empty).
            c: ``(B, L)`` the current batch's concept encodings.
        Returns:
            ``x0 (B, *event)`` and the labels ``(B, L)`` the chains run under.
        """
        b = fresh.shape[0]
        if c.shape[0] != b:
            raise ValueError(f"fresh has {b} chains but c has {c.shape[0]} labels")
        if self.count == 0:
            return fresh, c
        self._check_shapes(fresh[:1], c[:1])
        dev = fresh.device
        idx = torch.randint(0, self.count, (b,), generator=generator, device=dev)  # (B,)
        u = torch.rand(b, generator=generator, device=dev)
        reuse = u >= self.reinit_prob  # (B,) bool
        noise = torch.rand(fresh.shape, generator=generator, device=dev, dtype=fresh.dtype)
        # dequantise: uniform within the stored value's rounding cell
        stored = ((self.x[idx.to(self.x.device)].to(fresh) + noise - 0.5) / 255.0).clamp(0, 1)
        x0 = torch.where(reuse.reshape(b, *([1] * (fresh.dim() - 1))), stored, fresh)
        if self.label_policy == "stored":
            c = torch.where(reuse[:, None], self.c[idx.to(self.c.device)].to(c), c)
        return x0, c

    def push(self, x: Tensor, c: Tensor) -> None:
        """Store the final chain states ``x (B, *event)`` in [0, 1] with their labels."""
        x, c = x.detach(), c.detach()
        if self.x is None:
            self.x = torch.zeros((self.capacity, *x.shape[1:]), dtype=torch.uint8,
                                 device=x.device)
            self.c = torch.zeros((self.capacity, c.shape[1]), dtype=torch.float32,
                                 device=x.device)
        self._check_shapes(x, c)
        q = (x * 255.0).round().clamp(0, 255).to(torch.uint8)  # as the official code
        n = x.shape[0]
        slots = (self.ptr + torch.arange(n, device=self.x.device)) % self.capacity
        if n > self.capacity:  # only the last `capacity` samples survive
            q, c, slots = q[-self.capacity:], c[-self.capacity:], slots[-self.capacity:]
        self.x[slots] = q.to(self.x.device)
        self.c[slots] = c.to(self.c)
        self.ptr = (self.ptr + n) % self.capacity
        self.count = min(self.count + n, self.capacity)

    def _check_shapes(self, x: Tensor, c: Tensor) -> None:
        if self.x is not None and (x.shape[1:] != self.x.shape[1:] or
                                   c.shape[1:] != self.c.shape[1:]):
            raise ValueError(
                f"replay buffer holds x {tuple(self.x.shape[1:])} and c {tuple(self.c.shape[1:])}"
                f", got x {tuple(x.shape[1:])} and c {tuple(c.shape[1:])}"
            )

    # ---------------------------------------------------------------- checkpoint support
    def state(self) -> tuple[dict[str, Tensor], dict]:
        """Raw ring slots ``x``, ``c`` (filled part) and ``{count, ptr, capacity}``, for
        safetensors + JSON. Raw slots keep sampling indices meaningful after a resume."""
        info = {"count": self.count, "ptr": self.ptr, "capacity": self.capacity}
        if self.count == 0:
            return {}, info
        return ({"x": self.x[:self.count].cpu().contiguous(),
                 "c": self.c[:self.count].cpu().contiguous()}, info)

    def load_state(self, tensors: dict[str, Tensor], info: dict, device=None) -> None:
        """Restore from :meth:`state`; with another capacity the newest samples are kept."""
        self.x = self.c = None
        self.count = self.ptr = 0
        if not tensors:
            return
        x, c = tensors["x"], tensors["c"]
        count, ptr, cap = int(info["count"]), int(info["ptr"]), int(info["capacity"])
        if (x.dtype != torch.uint8 or x.dim() < 2 or c.dim() != 2 or x.shape[0] != count
                or c.shape[0] != count or count > cap):
            raise ValueError(f"corrupt replay buffer state: x {x.dtype} {tuple(x.shape)}, "
                             f"c {tuple(c.shape)}, count {count}, capacity {cap}")
        if cap == self.capacity:
            # a first push allocates the ring with the right shapes; then copy the raw slots
            self.push(x[:1].to(device).float(), c[:1].to(device))
            self.x[:count], self.c[:count] = x.to(self.x.device), c.to(self.c)
            self.count, self.ptr = count, ptr
            return
        oldest = ptr if count == cap else 0
        order = (torch.arange(count) + oldest) % count  # oldest first
        self.push(x[order].to(device).float() / 255.0, c[order].to(device))
