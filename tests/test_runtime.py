"""conceptebm.runtime: the process settings the command line applies."""

import gc
import os
import subprocess
import sys

from conceptebm.runtime import freeze_gc


def test_freeze_gc_exempts_what_is_alive_and_still_collects_new_garbage():
    before = gc.get_freeze_count()
    assert freeze_gc() >= max(before, 1)

    class Cycle:
        pass

    a = Cycle()
    a.self = a  # a reference cycle created after the freeze: still garbage the GC finds
    del a
    assert gc.collect() >= 1
    gc.unfreeze()  # leave the test process as it was


def _tuned(env_value):
    env = {**os.environ, "CONCEPTEBM_MALLOC": env_value}
    out = subprocess.run([sys.executable, "-c",
                          "from conceptebm.runtime import tune_allocator as t; "
                          "print(t(), t())"], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.split()


def test_allocator_tuning_is_applied_once_and_can_be_turned_off():
    first, again = _tuned("")
    assert first == again  # the second call reports the first one's result
    if sys.platform.startswith("linux") and os.path.exists("/lib/x86_64-linux-gnu/libc.so.6"):
        assert first == "True"
    assert _tuned("default") == ["False", "False"]


def test_tune_process_freezes_the_start_up_objects_once():
    code = ("import gc; from conceptebm.runtime import tune_process as t; t(); "
            "n = gc.get_freeze_count(); keep = [[] for _ in range(1000)]; t(); "
            "print(n > 0, gc.get_freeze_count() == n)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["True", "True"]
