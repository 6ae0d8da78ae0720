"""Defaults of the single-machine stack, overridable by flags and ``EDGETWIN_*`` variables."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_BROKER", "DEFAULT_NODE", "REPO_ROOT", "SAMPLES", "default_broker", "default_data_dir"]

DEFAULT_NODE = "edge-node-1"
DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
# crds/samples ships in the source tree next to the packages (editable installs and `make run`).
REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLES = REPO_ROOT / "crds" / "samples"


def default_broker() -> str:
    return os.environ.get("EDGETWIN_BROKER", DEFAULT_BROKER)


def default_data_dir() -> Path:
    return Path(os.environ.get("EDGETWIN_DATA_DIR", ".edgetwin"))
