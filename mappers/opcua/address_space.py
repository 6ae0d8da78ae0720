"""OPC UA's standard address space for the simulated servers, built once per machine and then read.

An asyncua server starts by creating the ~25,000 nodes of the standard address space from
generated code: ~1.7 s of CPU on a 2-core machine, the longest step of ``edgetwin up``. asyncua can
instead read them lazily from a ``shelve`` file (``Server.init(shelf_file)``): ~0.1 s. The shelf
is made the first time a simulator starts and kept in the user's cache folder, one per asyncua and
Python version (it holds pickles of asyncua's own classes), so a new venv or an upgrade makes a new
one.

The shelf is written into a folder of its own that becomes the cache only once complete (one
rename), so a start killed while writing, or two simulators starting at once, never leave a
half-written shelf for the next start to read. asyncua decides a shelf exists by a file at exactly
the path it is given, which ``dbm.dumb`` (the only dbm module some Python builds have) does not
write: a marker file takes its place. When the cache folder cannot be written the simulator simply
builds the address space in memory, as it would without a cache.
"""

from __future__ import annotations

import dbm
import logging
import os
import pickle
import shutil
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

__all__ = ["UNREADABLE_SHELF", "ShelfPlan", "cache_root", "plan_shelf"]

log = logging.getLogger(__name__)

#: What reading a damaged shelf raises (``dbm.error`` is a tuple of classes).
UNREADABLE_SHELF: tuple[type[BaseException], ...] = (
    *dbm.error,
    EOFError,
    KeyError,
    OSError,
    ValueError,
    pickle.UnpicklingError,
)
#: The file name asyncua is given; ``dbm`` adds its own suffixes beside it.
SHELF_NAME = "address-space"


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/edgetwin``, or ``~/.cache/edgetwin``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgetwin"


def _cache_folder(root: Path) -> Path:
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    return root / f"opcua-address-space-{version('asyncua')}-{python}"


class ShelfPlan:
    """Which shelf a server's ``init`` is given, and what to do once it returns.

    ``shelf`` is None when there is neither a cache nor a place to make one: the server then builds
    its address space in memory.
    """

    def __init__(
        self, shelf: Path | None, *, building: Path | None = None, final: Path | None = None
    ) -> None:
        self.shelf = shelf
        self._building = building
        self._final = final

    @property
    def cached(self) -> bool:
        """The shelf is read from an existing cache (nothing is built)."""
        return self.shelf is not None and self._building is None

    def finish(self) -> None:
        """After ``init``: a shelf just built becomes the cache (or is dropped if another won)."""
        building, final = self._building, self._final
        if building is None or final is None:
            return
        shelf = building / SHELF_NAME
        try:
            if not shelf.exists():
                shelf.touch()  # dbm.dumb wrote only .dat/.dir: asyncua looks for this exact file
            building.rename(final)
            log.debug("OPC UA standard address space cached in %s", final)
        except OSError as exc:
            # Another simulator finished first (the folder exists), or the folder went read-only.
            log.debug("OPC UA address space not cached (%s)", exc)
        finally:
            shutil.rmtree(building, ignore_errors=True)

    def abandon(self) -> None:
        """``init`` failed: nothing half-built is left behind, and a cache it could not read goes."""
        if self._building is not None:
            shutil.rmtree(self._building, ignore_errors=True)
        elif self.shelf is not None:
            log.warning("OPC UA address space cache %s unreadable: removed", self.shelf.parent)
            shutil.rmtree(self.shelf.parent, ignore_errors=True)


def plan_shelf(root: Path | None = None) -> ShelfPlan:
    """The cached shelf if there is one, else a fresh folder to build it in, else no shelf."""
    final = _cache_folder(cache_root() if root is None else root)
    if (final / SHELF_NAME).is_file():
        return ShelfPlan(final / SHELF_NAME)
    try:
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    except OSError as exc:
        log.debug("OPC UA address space cache unavailable (%s): built in memory", exc)
        return ShelfPlan(None)
    return ShelfPlan(building / SHELF_NAME, building=building, final=final)
