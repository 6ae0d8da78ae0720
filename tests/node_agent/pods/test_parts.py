"""The pure parts of the pod runtime, table-driven: back-off, phase, ``$(VAR)`` expansion,
Kubernetes quantities, CRI log lines (partial lines, rotation, tail, previous instances)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from node_agent.pods.clock import BackOff, CrashBackOff, PodClock
from node_agent.pods.env import expand
from node_agent.pods.logs import ContainerLogs, LogWriter, read_log
from node_agent.pods.podman_args import cpus, memory_bytes
from node_agent.pods.spec import Container
from node_agent.pods.status import ContainerState, ContainerStatus, Running, Terminated, Waiting, pod_status

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_crash_back_off_doubles_from_ten_seconds_to_five_minutes_and_resets_after_ten_minutes_running() -> (
    None
):
    backoff = CrashBackOff(BackOff())
    assert [backoff.next_delay(ran_for=1.0) for _ in range(7)] == [10, 20, 40, 80, 160, 300, 300]
    assert backoff.next_delay(ran_for=600.0) == 10
    assert backoff.next_delay(ran_for=5.0) == 20


def test_the_pod_clock_refuses_a_scale_that_would_stop_time() -> None:
    with pytest.raises(ValueError, match="positive"):
        PodClock(0)


def _container(
    state: ContainerState, last: ContainerState | None = None, ready: bool = False
) -> ContainerStatus:
    return ContainerStatus(name="c", image="i", state=state, last_state=last or ContainerState(), ready=ready)


WAITING = ContainerState(waiting=Waiting(reason="ContainerCreating"))
RUNNING = ContainerState(running=Running(started_at="2026-12-01T00:00:00Z"))
EXIT_0 = ContainerState(terminated=Terminated(exit_code=0, reason="Completed", finished_at="x"))
EXIT_1 = ContainerState(terminated=Terminated(exit_code=1, reason="Error", finished_at="x"))
CRASH_LOOP = ContainerState(waiting=Waiting(reason="CrashLoopBackOff"))


@pytest.mark.parametrize(
    ("containers", "done", "phase"),
    [
        ([_container(WAITING)], False, "Pending"),
        ([_container(RUNNING), _container(WAITING)], False, "Pending"),
        ([_container(RUNNING)], False, "Running"),
        ([_container(CRASH_LOOP, EXIT_1)], False, "Running"),
        ([_container(EXIT_0), _container(EXIT_0)], True, "Succeeded"),
        ([_container(EXIT_0), _container(EXIT_1)], True, "Failed"),
    ],
)
def test_the_phase_follows_the_kubelet(containers: list[ContainerStatus], done: bool, phase: str) -> None:
    status = pod_status(containers, restart_policy="OnFailure", done=done, previous=None, now=NOW,
                        host_ip=None, pod_ip=None, start_time=None)  # fmt: skip
    assert status.phase == phase


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    first = pod_status([_container(RUNNING, ready=True)], restart_policy="Always", done=False, previous=None,
                       now=NOW, host_ip=None, pod_ip=None, start_time=NOW)  # fmt: skip
    later = datetime(2026, 12, 2, tzinfo=UTC)
    same = pod_status([_container(RUNNING, ready=True)], restart_policy="Always", done=False, previous=first,
                      now=later, host_ip=None, pod_ip=None, start_time=NOW)  # fmt: skip
    flipped = pod_status([_container(RUNNING)], restart_policy="Always", done=False, previous=same,
                         now=later, host_ip=None, pod_ip=None, start_time=NOW)  # fmt: skip
    assert same.condition("Ready").last_transition_time == "2026-12-01T00:00:00Z"
    assert flipped.condition("Ready").last_transition_time == "2026-12-02T00:00:00Z"
    assert flipped.condition("PodScheduled").last_transition_time == "2026-12-01T00:00:00Z"


@pytest.mark.parametrize(
    ("text", "expanded"),
    [("$(A)-$(B)", "1-two"), ("$$(A)", "$(A)"), ("$(MISSING)", "$(MISSING)"), ("$A", "$A"), ("a$$b", "a$b")],
)
def test_variable_references_expand_as_in_kubernetes(text: str, expanded: str) -> None:
    assert expand(text, {"A": "1", "B": "two"}) == expanded


@pytest.mark.parametrize(
    ("quantity", "memory"),
    [("64Mi", 64 * 2**20), ("1Gi", 2**30), ("500M", 500_000_000), (1024, 1024), ("1.5Ki", 1536)],
)
def test_memory_quantities_convert_to_bytes(quantity: str | int, memory: int) -> None:
    assert memory_bytes(quantity) == memory


@pytest.mark.parametrize(("quantity", "cores"), [("250m", 0.25), ("2", 2.0), (1, 1.0), ("1500m", 1.5)])
def test_cpu_quantities_convert_to_cores(quantity: str | int, cores: float) -> None:
    assert cpus(quantity) == pytest.approx(cores)


@pytest.mark.parametrize("bad", ["lots", "12Zi", "-1"])
def test_a_quantity_that_is_not_one_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="quantity"):
        memory_bytes(bad)


@pytest.mark.parametrize(
    ("image", "policy"),
    [("busybox", "Always"), ("busybox:latest", "Always"), ("busybox:1.36", "IfNotPresent"),
     ("registry:5000/app", "Always"), ("registry:5000/app:2", "IfNotPresent"),
     ("app@sha256:ab", "IfNotPresent")],
)  # fmt: skip
def test_the_default_pull_policy_is_kubernetes(image: str, policy: str) -> None:
    assert Container(name="c", image=image).pull_policy() == policy


async def _read(path: Path, **options: object) -> list[bytes]:
    return [line async for line in read_log(path, **options)]  # type: ignore[arg-type]


async def test_log_lines_written_in_pieces_read_back_whole(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    writer = LogWriter(path)
    writer.write("stdout", b"hel")
    writer.write("stderr", b"oops\n")
    writer.write("stdout", b"lo\nwor")
    writer.write("stdout", b"ld\nno newline")
    writer.close()
    records = path.read_bytes().splitlines()
    assert [r.split(b" ", 3)[1:3] for r in records] == [
        [b"stderr", b"F"],
        [b"stdout", b"F"],
        [b"stdout", b"F"],
        [b"stdout", b"P"],
    ]
    assert await _read(path) == [b"oops\n", b"hello\n", b"world\n", b"no newline"]
    assert await _read(path, tail=1) == [b"world\n", b"no newline"]


async def test_a_log_past_its_bound_is_rotated_once_and_still_read_in_order(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    writer = LogWriter(path, max_bytes=400)
    for number in range(30):
        writer.write("stdout", f"line {number}\n".encode())
    writer.close()
    assert path.stat().st_size <= 400 and path.with_name("0.log.1").stat().st_size <= 400
    lines = await _read(path)
    assert lines[-1] == b"line 29\n"
    assert [int(line.split()[1]) for line in lines] == list(range(30 - len(lines), 30))


def test_only_the_current_and_previous_instance_logs_are_kept(tmp_path: Path) -> None:
    logs = ContainerLogs(tmp_path)
    for instance in range(4):
        logs.new_instance("app", instance).write_text(f"{instance}\n")
    assert logs.instances("app") == [2, 3]
