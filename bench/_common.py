"""Helpers the benchmarks share: brokers on free loopback ports, percentiles, tables, CPU use.

Why a module of its own: each benchmark starts and cleans up real servers the same way the tests do
(tests/fixtures/brokers.py), but a benchmark is a script run from a plain checkout, not a pytest
session, so it cannot use the fixtures. Everything here binds 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"
MOSQUITTO = Path("/usr/sbin/mosquitto")
_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on {LOOPBACK}:{port} within {timeout:.0f} s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate one process we started, then kill it if it does not go within 5 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def mosquitto_binary() -> Path:
    if MOSQUITTO.is_file():
        return MOSQUITTO
    found = shutil.which("mosquitto")
    if found is None:
        sys.exit("mosquitto is not installed: `apt-get install mosquitto`, or pass --broker embedded")
    return Path(found)


@contextlib.contextmanager
def broker_process(kind: str, workdir: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A broker of ``kind`` (``mosquitto`` or ``embedded``) in its own process on a free port."""
    port = free_port()
    if kind == "mosquitto":
        config = workdir / "mosquitto.conf"
        # As tests/fixtures/brokers.py: TCP_NODELAY (DESIGN.md §11) and room for bursts of QoS 1.
        config.write_text(
            f"listener {port} {LOOPBACK}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "set_tcp_nodelay true\n"
            "max_queued_messages 100000\n"
            "log_type error\n"
        )
        command = [str(mosquitto_binary()), "-c", str(config)]
    else:
        command = [sys.executable, "-m", "edgetwin", "--log-level", "WARNING", "broker"]
        command += ["--host", LOOPBACK, "--port", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        wait_listening(port, proc, kind)
        yield port, proc
    finally:
        stop_process(proc)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, proc(5)).
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_cpu_seconds() -> float:
    """CPU time all cores have spent busy so far (Linux /proc/stat, every process together)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return 0.0
    # cpu user nice system idle iowait irq softirq steal ...: busy is all but idle and iowait.
    values = [int(v) for v in first[1:9]]
    return (sum(values) - values[3] - values[4]) / _TICKS


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (``nan`` when empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table with right-aligned figures, readable in a terminal and in README.md."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 1) + ":" if i else "-" * (w + 2) for i, w in enumerate(widths)) + "|",
    ]
    for row in rows:
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({model}), Python {sys.version.split()[0]}"
