"""examples/traffic-light runs as a user runs it: the node and ``cycle.py`` as processes, the twin watched."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.brokers import Mosquitto
from tests.fixtures.processes import service
from twin.client import TwinClient, TwinEvent

REPO = Path(__file__).resolve().parents[2]
CYCLE = REPO / "examples" / "traffic-light" / "cycle.py"
LIGHTS = ("red", "yellow", "green")


def cycle(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CYCLE), *args], capture_output=True, text=True, timeout=60, cwd=REPO, check=False
    )


@pytest.mark.parametrize(
    ("devices", "on", "off"),
    [
        ("examples/traffic-light", "ON", "OFF"),  # KubeEdge's demo: STRING properties
        ("crds/samples/traffic-light.yaml", "true", "false"),  # the sample `edgetwin up` runs: BOOLEAN
    ],
)
async def test_the_traffic_light_goes_red_green_yellow_red_in_the_twin(
    mosquitto: Mosquitto, tmp_path: Path, devices: str, on: str, off: str
) -> None:
    url = mosquitto.address.url
    node_args = ["node", "edge-node-1", "--broker", url, "--data-dir", str(tmp_path)]
    timings = ["--red", "0.1", "--green", "0.1", "--yellow", "0.1", "--cycles", "1"]
    with service(*node_args, "--devices", devices, "--mappers", "gpio", cwd=REPO) as node:
        node.wait_for("node edge-node-1: twin service")
        async with TwinClient(url) as twins, twins.subscription("traffic-light", ("document",)) as documents:
            state = {name: prop.reported for name, prop in (await twins.get("traffic-light")).items()}
            # Documents that came before the twin's answer (the node's first reports) are in ``state``
            # already: the broker delivers the twin's messages in the order it sent them. Taken again
            # after it, they would replay an old light (all off) in the middle of the cycle.
            while not documents.empty():
                documents.get_nowait()

            def take(event: TwinEvent) -> tuple[str, ...]:
                state.update({name: prop.reported for name, prop in event.current.items() if prop.reported})
                return tuple(light for light in LIGHTS if state.get(light) == on)

            async with asyncio.timeout(20):  # the manifest's desired values: red
                while state != {"red": on, "yellow": off, "green": off}:
                    take(await documents.get())
            app = asyncio.create_task(asyncio.to_thread(cycle, "--broker", url, *timings))
            seen: list[tuple[str, ...]] = [("red",)]
            while not app.done() or not documents.empty():
                try:
                    lit = take(await asyncio.wait_for(documents.get(), 0.2))
                except TimeoutError:
                    continue
                if not seen or seen[-1] != lit:
                    seen.append(lit)
            result = await app
        assert result.returncode == 0, result.stderr
        assert [line.split()[1] for line in result.stdout.splitlines()] == ["red", "green", "yellow", "red"]
        # One light at a time, in a traffic light's order, as the twin reported it.
        assert seen == [("red",), ("green",), ("yellow",), ("red",)]
        node.wait_for("default/traffic-light: yellow on GPIO24 is now ON (mock pin)")


def test_bad_timings_are_refused_before_anything_is_sent() -> None:
    result = cycle("--red", "-1", "--broker", "mqtt://127.0.0.1:1")
    assert result.returncode == 2
    assert "must not be negative" in result.stderr
