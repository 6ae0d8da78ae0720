"""``edgetwin apiserver`` through the real command line: CRDs installed, kubeconfig printed, clean stop."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.fixtures.apiserver import CRD_DIR, SAMPLES_DIR, Kubectl, kubectl_binary
from tests.fixtures.tools import free_port


class Command:
    """A running ``edgetwin apiserver`` process and what it printed."""

    def __init__(self, data_dir: Path, crds: Path, port: int, log: Path) -> None:
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edgetwin",
                "apiserver",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--crds",
                str(crds),
            ],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("try: "):
                break
        else:
            raise AssertionError(f"edgetwin apiserver exited early: {log.read_text()}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.log.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code


Start = Callable[..., Command]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    running: list[Command] = []

    def make(crds: Path = CRD_DIR, port: int = 0) -> Command:
        command = Command(tmp_path / "data", crds, port, tmp_path / f"log-{len(running)}.txt")
        running.append(command)
        return command

    yield make
    for command in running:
        if command.proc.poll() is None:
            command.stop()


def test_apiserver_command_installs_the_crds_and_prints_how_to_use_it(start: Start, tmp_path: Path) -> None:
    command = start(port=free_port())
    kubeconfig = Path(command.lines[1].removeprefix("kubeconfig: "))
    assert command.lines[0].startswith("embedded Kubernetes API server on https://127.0.0.1:")
    assert command.lines[2] == f"try: kubectl --kubeconfig {kubeconfig} get devices"
    kubectl = Kubectl(kubectl_binary(), kubeconfig, tmp_path / "cache")
    assert kubectl.run("get", "devices").stderr.strip() == "No resources found in default namespace."
    applied = kubectl.run("apply", "-f", str(SAMPLES_DIR)).stdout
    assert applied.count(" created") == 2 * len(list(SAMPLES_DIR.glob("*.yaml")))
    assert command.stop() == 0


def test_a_changed_shipped_crd_is_updated_at_the_next_start(start: Start, tmp_path: Path) -> None:
    crds = tmp_path / "crds"
    shutil.copytree(CRD_DIR, crds, ignore=shutil.ignore_patterns("samples"))
    port = free_port()
    first = start(crds, port)
    kubeconfig = Path(first.lines[1].removeprefix("kubeconfig: "))
    assert first.stop() == 0

    path = crds / "devices.kubeedge.io_devices.yaml"
    crd = yaml.safe_load(path.read_text())
    crd["spec"]["versions"][0]["additionalPrinterColumns"].insert(
        0, {"name": "Last Online", "type": "string", "jsonPath": ".status.lastOnlineTime"}
    )
    path.write_text(yaml.safe_dump(crd))
    second = start(crds, port)
    kubectl = Kubectl(kubectl_binary(), kubeconfig, tmp_path / "cache")
    kubectl.run("apply", "-f", str(SAMPLES_DIR / "gpio-led.yaml"))
    header = kubectl.run("get", "devices").stdout.splitlines()[0]
    assert header.split() == ["NAME", "LAST", "ONLINE", "NODE", "MODEL", "STATE", "AGE"]
    assert second.stop() == 0
