"""The package's public surface: what ``edgetwin`` (and anyone embedding the server) builds on."""

from __future__ import annotations

from pathlib import Path

import api_server


def test_the_public_names_are_pinned_and_sorted() -> None:
    assert api_server.__all__ == [
        "ApiError",
        "ApiServer",
        "ApiServerError",
        "LogOptions",
        "PodLogs",
        "WatchLimits",
        "load_crd_manifests",
        "serve",
    ]
    assert api_server.__all__ == sorted(api_server.__all__)
    assert all(hasattr(api_server, name) for name in api_server.__all__)


def test_the_package_is_typed_and_no_module_passes_400_lines() -> None:
    package = Path(api_server.__file__).parent
    assert (package / "py.typed").is_file()
    sizes = {p.name: len(p.read_text().splitlines()) for p in package.glob("*.py")}
    assert max(sizes.values()) <= 400, sizes
