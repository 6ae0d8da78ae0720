"""Reports go out only when a value changed, at most once per reportCycle (time passed in)."""

from __future__ import annotations

from mappers.reporting import Reading, ReportBuffer


def r(value: str, ts: int = 0) -> Reading:
    return Reading(value, ts)


def test_first_reading_is_due_at_once() -> None:
    buf = ReportBuffer()
    buf.offer("temp", r("21"), cycle=1.0, now=0.0)
    assert buf.take(0.0) == {"temp": r("21")}


def test_unchanged_value_is_not_reported_again() -> None:
    buf = ReportBuffer()
    buf.offer("temp", r("21"), cycle=0.0, now=0.0)
    buf.take(0.0)
    buf.offer("temp", r("21", 5), cycle=0.0, now=5.0)
    assert buf.take(5.0) == {}
    assert buf.next_due() is None


def test_changes_within_a_report_cycle_are_coalesced_to_the_latest() -> None:
    buf = ReportBuffer()
    buf.offer("temp", r("21"), cycle=1.0, now=0.0)
    buf.take(0.0)
    buf.offer("temp", r("22", 100), cycle=1.0, now=0.1)
    buf.offer("temp", r("23", 200), cycle=1.0, now=0.2)
    assert buf.take(0.5) == {}
    assert buf.next_due() == 1.0
    assert buf.take(1.0) == {"temp": r("23", 200)}


def test_a_change_reverted_before_its_cycle_is_not_reported() -> None:
    buf = ReportBuffer()
    buf.offer("temp", r("21"), cycle=1.0, now=0.0)
    buf.take(0.0)
    buf.offer("temp", r("22"), cycle=1.0, now=0.3)
    buf.offer("temp", r("21"), cycle=1.0, now=0.6)
    assert buf.take(1.5) == {}


def test_forced_reading_goes_out_at_once_even_if_unchanged() -> None:
    buf = ReportBuffer()
    buf.offer("target", r("20"), cycle=10.0, now=0.0)
    buf.take(0.0)
    buf.offer("target", r("20"), cycle=10.0, now=1.0, force=True)
    assert buf.take(1.0) == {"target": r("20")}


def test_properties_have_their_own_cycles() -> None:
    buf = ReportBuffer()
    buf.offer("fast", r("1"), cycle=0.0, now=0.0)
    buf.offer("slow", r("1"), cycle=5.0, now=0.0)
    assert set(buf.take(0.0)) == {"fast", "slow"}
    buf.offer("fast", r("2"), cycle=0.0, now=1.0)
    buf.offer("slow", r("2"), cycle=5.0, now=1.0)
    assert buf.take(1.0) == {"fast": r("2")}
    assert buf.next_due() == 5.0


def test_forget_makes_every_next_reading_go_out() -> None:
    buf = ReportBuffer()
    buf.offer("temp", r("21"), cycle=0.0, now=0.0)
    buf.take(0.0)
    buf.forget()
    buf.offer("temp", r("21"), cycle=0.0, now=1.0)
    assert buf.take(1.0) == {"temp": r("21")}
    assert buf.last_sent("temp") == "21"
