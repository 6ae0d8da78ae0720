"""cloud-sync's collector settings (cloud_sync.collector): objects of writes in progress start no full
collection over the Devices it holds, and reference cycles are still freed without being asked.

The churn runs in a fresh interpreter of its own: the collector's counts are per process, and the
test process's own objects would blur them.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cloud_sync import collector

SAMPLE = Path(__file__).resolve().parents[2] / "crds" / "samples" / "modbus-tcp.yaml"

CHURN = r"""
import contextlib, gc, json, sys
import orjson, yaml
from cloud_sync import collector

tuned = sys.argv[1] == "cloud-sync"
device = next(d for d in yaml.safe_load_all(open(sys.argv[2])) if d and d.get("kind") == "Device")
raw = orjson.dumps(device)
held = [orjson.loads(raw) for _ in range(20_000)]  # the Devices a watch keeps
gc.collect()
counts = {"young": 0, "full": 0, "freed": 0}

def count(phase, info):
    if phase == "stop":
        counts["full" if info["generation"] == 2 else "young"] += 1
        counts["freed"] += info["collected"]

gc.callbacks.append(count)
with collector.tuned() if tuned else contextlib.nullcontext():
    for write in range(300):
        # A burst of status writes in progress (6,000 tracked objects): each one's status, alive
        # until its answer comes.
        twin = lambda: {"propertyName": "t", "reported": {"value": [write]}}
        burst = [{"status": {"twins": [twin()]}} for _ in range(1_000)]
        del burst
    churn = dict(counts)
    for _ in range(50_000):  # garbage only the collector frees: objects that refer to themselves
        cycle = {}
        cycle["self"] = cycle
    del cycle
gc.callbacks.remove(count)
print(json.dumps({"churn": churn, "after": counts}))
"""


def churn(mode: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHURN, mode, str(SAMPLE)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_writes_in_progress_start_no_full_collection_over_the_devices_held() -> None:
    cpython = churn("cpython")
    tuned = churn("cloud-sync")
    # CPython's own thresholds walk the 20,000 Devices again and again, and free nothing doing it.
    assert cpython["churn"]["full"] >= 1
    assert cpython["churn"]["freed"] == 0
    assert tuned["churn"] == {"young": 0, "full": 0, "freed": 0}


def test_reference_cycles_are_still_freed_without_being_asked() -> None:
    tuned = churn("cloud-sync")
    freed = tuned["after"]["freed"] - tuned["churn"]["freed"]
    # 50,000 cycles made; at most one threshold's worth (10,000) may still wait for the next collection.
    assert freed >= 50_000 - collector.THRESHOLDS[0]


def test_the_settings_hold_while_any_cloud_sync_runs_and_go_back_after_the_last() -> None:
    before = gc.get_threshold()
    with collector.tuned():
        assert gc.get_threshold() == collector.THRESHOLDS
        with collector.tuned():  # a second replica in the same process
            pass
        assert gc.get_threshold() == collector.THRESHOLDS
    assert gc.get_threshold() == before
