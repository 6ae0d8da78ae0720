"""Block-read planning: as few requests as Modbus allows, never splitting a property."""

from __future__ import annotations

from mappers.modbus.decoding import RegisterKind
from mappers.modbus.planner import MAX_REGISTERS, Span, plan

H = RegisterKind.HOLDING
I = RegisterKind.INPUT  # noqa: E741
C = RegisterKind.COIL


def blocks(spans: list[Span[str]], **kw: int) -> list[tuple[RegisterKind, int, int, list[str]]]:
    return [(b.kind, b.address, b.count, [s.key for s in b.spans]) for b in plan(spans, **kw)]


def test_adjacent_properties_share_one_request() -> None:
    spans = [Span(f"p{i}", H, i, 1) for i in range(40)]
    assert blocks(spans) == [(H, 0, 40, [f"p{i}" for i in range(40)])]


def test_multi_register_values_are_never_split() -> None:
    spans = [Span("a", H, 0, 2), Span("b", H, 2, 4), Span("c", H, 6, 1)]
    assert blocks(spans) == [(H, 0, 7, ["a", "b", "c"])]


def test_gap_up_to_max_gap_is_read_through_and_larger_gap_splits() -> None:
    spans = [Span("a", H, 0, 1), Span("b", H, 5, 1), Span("c", H, 30, 1)]
    assert blocks(spans, max_gap=4) == [(H, 0, 6, ["a", "b"]), (H, 30, 1, ["c"])]
    assert blocks(spans, max_gap=3) == [(H, 0, 1, ["a"]), (H, 5, 1, ["b"]), (H, 30, 1, ["c"])]


def test_block_never_exceeds_125_registers() -> None:
    spans = [Span(f"p{i}", H, i * 2, 2) for i in range(100)]  # 200 registers
    result = plan(spans)
    assert [b.count for b in result] == [124, 76]
    assert all(b.count <= MAX_REGISTERS for b in result)
    assert sum(len(b.spans) for b in result) == 100


def test_configurable_request_size() -> None:
    spans = [Span(f"p{i}", H, i, 1) for i in range(10)]
    assert [b.count for b in plan(spans, max_registers=4)] == [4, 4, 2]


def test_tables_are_planned_separately_and_unsorted_input_is_fine() -> None:
    spans = [
        Span("h1", H, 1, 1),
        Span("i0", I, 0, 1),
        Span("h0", H, 0, 1),
        Span("c0", C, 0, 1),
        Span("c1", C, 1, 1),
    ]
    assert blocks(spans) == [(C, 0, 2, ["c0", "c1"]), (I, 0, 1, ["i0"]), (H, 0, 2, ["h0", "h1"])]


def test_overlapping_properties_share_registers() -> None:
    spans = [Span("word", H, 10, 2), Span("low", H, 11, 1)]
    result = plan(spans)
    assert blocks(spans) == [(H, 10, 2, ["word", "low"])]
    block = result[0]
    assert block.slice(spans[1], [7, 8]) == [8]


def test_unmergeable_span_gets_its_own_request() -> None:
    spans = [Span("a", H, 0, 1), Span("b", H, 1, 1, mergeable=False), Span("c", H, 2, 1)]
    assert blocks(spans) == [(H, 0, 1, ["a"]), (H, 1, 1, ["b"]), (H, 2, 1, ["c"])]


def test_coils_merge_up_to_2000_bits() -> None:
    spans = [Span(f"c{i}", C, i * 100, 100) for i in range(30)]
    assert [b.count for b in plan(spans)] == [2000, 1000]
