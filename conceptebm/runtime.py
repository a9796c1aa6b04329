"""Process settings that make torch's CPU loops faster: the C allocator's heap policy and the
garbage collector's view of start-up objects. :func:`tune_process` applies both.

A Langevin chain or a training step frees and re-allocates the same few large buffers
(activations, gradients, noise: about 1 MB each for 64 images of 3x32x32) every step. With
glibc's default policy the heap top is trimmed back to the operating system whenever more
than a few MB are free, and buffers over its mmap threshold are mapped and unmapped per
call, so the next step writes to fresh pages and pays a page fault per 4 KB. On this
project's CPU that was 18-30 % of a sampling loop's time (system time 8 s of 47 s in
``benchmarks/engine_overhead.py``), for a hand-written loop and the engine alike, and it made
paired timings drift with the heap's state.

:func:`tune_allocator` keeps freed memory for reuse: an mmap threshold and a top pad of
64 MB (``mallopt``), so buffers below 64 MB come from the heap and are recycled warm. Freed
memory is reused rather than returned, so up to 64 MB more stays mapped after a peak (the
command-line memory bounds of ``tests/cli/test_memory.py`` hold with it). The command line
calls it at start-up; a notebook may call it once. It does nothing where the C library is not
glibc, or when ``CONCEPTEBM_MALLOC=default`` is set.

:func:`freeze_gc` moves every object alive at that moment (the imported modules: about 180k
objects with torch and Pyro) out of the cyclic garbage collector's sight (``gc.freeze``). A
Pyro model allocates hundreds of small Python objects per sampler step, which sets off a full
collection every few hundred steps; each one walked all those module objects (tens of ms).
Measured in ``benchmarks/engine_overhead.py``: Pyro path over the bare loop 1.32 with it,
1.18 frozen (10 paired repeats); the engine path 1.04 and 1.01.

Example:
    >>> isinstance(tune_allocator(), bool)
    True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sys

__all__ = ["tune_allocator", "freeze_gc", "tune_process"]

# mallopt parameter numbers from glibc's malloc.h
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 64 << 20  # buffers below this come from the heap, and this much stays mapped

_done: bool | None = None
_gc_frozen = False


def tune_allocator() -> bool:
    """Set glibc's heap policy for torch's CPU loops (once per process); True when applied."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("CONCEPTEBM_MALLOC", "").lower() == "default":
        return _done
    if not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt, nothing to tune
        return _done
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)) and bool(mallopt(_M_TOP_PAD, _KEEP_BYTES))
    return _done


def freeze_gc() -> int:
    """Collect once, then exempt every surviving object from later collections (``gc.freeze``);
    returns how many objects are frozen. Call it after the imports, before the long loop."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def tune_process() -> bool:
    """:func:`tune_allocator` and :func:`freeze_gc`, each once per process (a program that
    calls the command line several times, as the tests do, freezes only its start-up
    objects, not every later caller's); True when the allocator was tuned."""
    global _gc_frozen
    tuned = tune_allocator()
    if not _gc_frozen:
        freeze_gc()
        _gc_frozen = True
    return tuned
