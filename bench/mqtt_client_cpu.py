"""CPU time per QoS 1 publish of edgetwin's MQTT client, plain and over TLS, beside other Python clients.

Why: ``edgemqtt`` is hand-written because the twin's throughput rests on its client's cost per
message (the package docstring says why not paho-mqtt, aiomqtt or gmqtt). This measures that cost
on this machine, in one run, so the reason stays checked: each client publishes the same QoS 1
messages to the same mosquitto (in its own process) with at most ``--window`` unacknowledged, and
the publishing process's CPU time (``time.process_time``: every thread, paho's network thread
included) is divided by the messages acknowledged. The baseline in the same run is paho-mqtt.
Clients that are not installed (gmqtt, aiomqtt) are skipped with a note.

Run: ``.venv/bin/python bench/mqtt_client_cpu.py [--messages 20000] [--window 100] [--rounds 3]``.
Only 127.0.0.1 is used; the broker and its temporary folder are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import importlib.util
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from _common import LOOPBACK, free_port, machine, mosquitto_binary, stop_process, table, wait_listening

from edgemqtt.address import BrokerAddress
from edgemqtt.client import MqttClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fixtures.certs import make_tls_files

PAYLOAD = b'{"event_id":"","timestamp":0,"twin":{"p2":{"actual":{"value":"123456789"}}}}'
TOPIC = "bench/cpu"


@contextlib.contextmanager
def mosquitto(workdir: Path) -> Iterator[tuple[int, int, Path]]:
    """mosquitto with a plain and a TLS listener; yields both ports and the CA file."""
    import subprocess

    files = make_tls_files(workdir / "tls")
    plain, tls = free_port(), free_port()
    config = workdir / "mosquitto.conf"
    config.write_text(
        f"user {getpass.getuser()}\n"  # as root mosquitto would read the TLS files as user mosquitto
        f"listener {plain} {LOOPBACK}\nallow_anonymous true\n"
        f"listener {tls} {LOOPBACK}\ncafile {files.ca}\n"
        f"certfile {files.server_cert}\nkeyfile {files.server_key}\n"
        "persistence false\nset_tcp_nodelay true\nmax_queued_messages 100000\nlog_type error\n"
    )
    proc = subprocess.Popen([str(mosquitto_binary()), "-c", str(config)], stdout=subprocess.DEVNULL)
    try:
        wait_listening(plain, proc, "mosquitto")
        wait_listening(tls, proc, "mosquitto")
        yield plain, tls, files.ca
    finally:
        stop_process(proc)


def measure(run: Callable[[], None], messages: int) -> float:
    """µs of this process's CPU per message for ``run()``."""
    start = time.process_time()
    run()
    return (time.process_time() - start) / messages * 1e6


def edgemqtt_run(address: BrokerAddress, messages: int, window: int) -> Callable[[], None]:
    async def main() -> None:
        async with MqttClient(address) as client:
            for _ in range(messages // window):
                for _ in range(window - 1):
                    client.publish(TOPIC, PAYLOAD, qos=1)  # PUBACKs come in order: the last one
                await client.publish_confirmed(TOPIC, PAYLOAD)  # acknowledges the whole window

    return lambda: asyncio.run(main())


def paho_run(port: int, messages: int, window: int) -> Callable[[], None]:
    import paho.mqtt.client as paho

    def run() -> None:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        client.connect(LOOPBACK, port)
        client.loop_start()
        try:
            for _ in range(messages // window):
                infos = [client.publish(TOPIC, PAYLOAD, qos=1) for _ in range(window)]
                for info in infos:
                    info.wait_for_publish(10)
        finally:
            client.loop_stop()
            client.disconnect()

    return run


def aiomqtt_run(port: int, messages: int, window: int) -> Callable[[], None]:
    import logging

    import aiomqtt

    logging.getLogger("mqtt").setLevel(logging.ERROR)  # "There are N pending publish calls"

    async def main() -> None:
        async with aiomqtt.Client(LOOPBACK, port) as client:
            for _ in range(messages // window):
                await asyncio.gather(*(client.publish(TOPIC, PAYLOAD, qos=1) for _ in range(window)))

    return lambda: asyncio.run(main())


def gmqtt_run(port: int, messages: int, window: int) -> Callable[[], None]:
    import gmqtt

    async def main() -> None:
        acked = asyncio.Event()
        pending = 0

        def on_puback(*_: object) -> None:  # gmqtt has no await for a PUBACK: count them
            nonlocal pending
            pending -= 1
            if pending == 0:
                acked.set()

        client = gmqtt.Client(f"bench-{threading.get_ident()}")
        await client.connect(LOOPBACK, port, version=gmqtt.constants.MQTTv311)
        handler = client._package_handler
        handler._handle_puback_packet = _wrap(handler._handle_puback_packet, on_puback)
        for _ in range(messages // window):
            acked.clear()
            pending = window
            for _ in range(window):
                client.publish(TOPIC, PAYLOAD, qos=1)
            await asyncio.wait_for(acked.wait(), 10)
        await client.disconnect()

    return lambda: asyncio.run(main())


def _wrap(handler: Callable[..., object], after: Callable[..., None]) -> Callable[..., object]:
    def wrapped(*args: object) -> object:
        result = handler(*args)
        after()
        return result

    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="QoS 1 messages per client and round")
    parser.add_argument("--window", type=int, default=100, help="unacknowledged messages at most")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds over all clients")
    args = parser.parse_args()
    n, w = args.messages, args.window
    with tempfile.TemporaryDirectory(prefix="edgetwin-bench-") as folder, mosquitto(Path(folder)) as ports:
        plain, tls, ca = ports
        clients: dict[str, Callable[[], Callable[[], None]]] = {
            "paho-mqtt (baseline)": lambda: paho_run(plain, n, w),
            "edgemqtt": lambda: edgemqtt_run(BrokerAddress(LOOPBACK, plain), n, w),
            "edgemqtt over TLS": lambda: edgemqtt_run(
                BrokerAddress("localhost", tls, tls=True, ca_file=ca), n, w
            ),
        }
        notes = []
        for name, runner in (("gmqtt", gmqtt_run), ("aiomqtt", aiomqtt_run)):
            if importlib.util.find_spec(name) is None:
                notes.append(f"{name} is not installed: skipped (`pip install {name}` to include it)")
            else:
                clients[name] = lambda runner=runner: runner(plain, n, w)  # type: ignore[misc]
        figures: dict[str, list[float]] = {name: [] for name in clients}
        for round_number in range(args.rounds):
            for name, make in clients.items():
                figures[name].append(measure(make(), n))
                print(f"  round {round_number + 1}: {name}: {figures[name][-1]:.1f} µs", flush=True)
    baseline = statistics.median(figures["paho-mqtt (baseline)"])
    rows = []
    for name, values in figures.items():
        median = statistics.median(values)
        rows.append(
            (name, f"{min(values):.1f}", f"{median:.1f}", f"{max(values):.1f}", f"{median / baseline:.2f}")
        )
    print(f"\n{n:,} QoS 1 publishes per client and round, window {w}, {args.rounds} rounds, mosquitto")
    print(f"machine: {machine()}\n")
    print(table(("client", "min µs/msg", "median", "max", "vs paho"), rows))
    for note in notes:
        print(note)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
