"""The service processes' GC settings, checked in a fresh interpreter (they are process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import gc, json
from hub.ops import gcpolicy

def collections_for(objects):
    runs = []
    gc.callbacks.append(lambda phase, info: runs.append(info["generation"]) if phase == "stop" else None)
    keep = []
    for n in range(objects):
        node = {"n": n}
        node["self"] = node  # a cycle, as ORM states and futures make
        keep.append(node)
        if len(keep) > 2000:  # a batch's worth stays alive, then dies
            keep.clear()
    gc.callbacks.clear()
    return runs

default = collections_for(100_000)
frozen_before = gc.get_freeze_count()
gcpolicy.tune_for_service()
tuned = collections_for(100_000)
cycle = []
cycle.append(cycle)
del cycle
print(json.dumps({"default": len(default), "tuned": len(tuned), "full_tuned": tuned.count(2),
                  "threshold": gc.get_threshold(), "frozen": gc.get_freeze_count() - frozen_before,
                  "still_collects": gc.collect() >= 1}))
"""


def _probe() -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", _PROBE], check=True, capture_output=True, text=True).stdout
    result: dict[str, object] = json.loads(out)
    return result


def test_service_gc_collects_a_batch_workload_far_less_often_and_still_frees_cycles() -> None:
    result = _probe()
    assert result["threshold"] == [20_000, 10, 10]
    assert isinstance(result["frozen"], int) and result["frozen"] > 1000  # the start-up heap left the collections
    assert isinstance(result["default"], int) and isinstance(result["tuned"], int)
    assert result["default"] >= 100 and result["tuned"] <= result["default"] // 10
    assert result["full_tuned"] == 0
    assert result["still_collects"] is True
