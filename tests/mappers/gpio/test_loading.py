"""gpiozero (~19 MB) is imported only when a GPIO device needs the plugin."""

from __future__ import annotations

import subprocess
import sys


def test_loading_the_sdk_and_other_plugins_does_not_import_gpiozero() -> None:
    code = (
        "import sys, mappers, mappers.runner, mappers.gpio, mappers.gpio.config, mappers.gpio.values\n"
        "from mappers import Registry\n"
        "r = Registry(); r.info('gpio'); r.load('virtual'); r.load('modbus')\n"
        "assert 'gpiozero' not in sys.modules, 'gpiozero imported'\n"
        "r.load('gpio')\n"
        "assert 'gpiozero' in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
