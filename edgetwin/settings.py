"""Defaults of the single-machine stack, overridable by flags and ``EDGETWIN_*`` variables."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "CRDS",
    "DEFAULT_BROKER",
    "DEFAULT_NODE",
    "REPO_ROOT",
    "SAMPLES",
    "default_broker",
    "default_data_dir",
]

DEFAULT_NODE = "edge-node-1"
DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
# crds/ lies next to the packages in a checkout (editable installs, `make run`); a wheel carries a
# copy inside this package.
REPO_ROOT = Path(__file__).resolve().parent.parent
CRDS = REPO_ROOT / "crds" if (REPO_ROOT / "crds").is_dir() else Path(__file__).resolve().parent / "crds"
SAMPLES = CRDS / "samples"


def default_broker() -> str:
    return os.environ.get("EDGETWIN_BROKER", DEFAULT_BROKER)


def default_data_dir() -> Path:
    return Path(os.environ.get("EDGETWIN_DATA_DIR", ".edgetwin"))
