"""Supervised pieces of a gateway: restarted after a crash, or stopping the gateway when hopeless."""

from __future__ import annotations

import pytest

from node_agent.supervision import PieceFailed, RestartPolicy, supervise

QUICK = RestartPolicy(max_restarts=3, window=60.0, delays=(0.0,))


async def test_a_crashed_piece_is_restarted_and_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError(f"crash {runs}")

    await supervise("the flaky piece", flaky, QUICK)
    assert runs == 3
    crashes = [r for r in caplog.records if "the flaky piece crashed" in r.getMessage()]
    assert len(crashes) == 2
    assert all(r.exc_info is not None for r in crashes)


async def test_a_piece_that_keeps_crashing_stops_the_gateway() -> None:
    runs = 0

    async def hopeless() -> None:
        nonlocal runs
        runs += 1
        raise OSError("disk gone")

    with pytest.raises(PieceFailed, match="the hopeless piece failed: OSError: disk gone"):
        await supervise("the hopeless piece", hopeless, QUICK)
    assert runs == QUICK.max_restarts + 1


async def test_a_piece_that_must_not_be_restarted_stops_the_gateway_at_its_first_crash() -> None:
    runs = 0

    async def core() -> None:
        nonlocal runs
        runs += 1
        raise ValueError("broken")

    with pytest.raises(PieceFailed):
        await supervise("the core", core, RestartPolicy(restart=False))
    assert runs == 1


async def test_a_piece_without_a_restart_limit_is_restarted_however_often_it_crashes() -> None:
    runs = 0

    async def link() -> None:
        nonlocal runs
        runs += 1
        if runs <= 20:
            raise ConnectionError("cloud on fire")

    await supervise("the link", link, RestartPolicy(max_restarts=None, delays=(0.0,)))
    assert runs == 21
