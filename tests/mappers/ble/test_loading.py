"""bleak (~21 MB) is imported only when a BLE device, or a BLE scan, needs it."""

from __future__ import annotations

import subprocess
import sys


def test_listing_plugins_and_importing_the_ble_package_does_not_import_bleak() -> None:
    code = (
        "import sys, mappers, mappers.runner, mappers.ble\n"
        "import mappers.ble.decoding, mappers.ble.config, mappers.ble.slots, mappers.ble.sample\n"
        "from mappers import Registry\n"
        "r = Registry(); r.info('ble'); r.load('virtual')\n"
        "assert 'ble' in r.names()\n"
        "assert 'bleak' not in sys.modules, 'bleak imported'\n"
        "r.load('ble')\n"
        "assert 'bleak' in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
