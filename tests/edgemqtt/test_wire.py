"""The one frame decoder: packets cut right whatever the chunks, refused when malformed or too large."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgemqtt.errors import ProtocolViolation
from edgemqtt.wire import PUBLISH, FrameDecoder, packet, publish_packet

PACKETS = [
    packet(12, 0, b""),  # PINGREQ: the smallest packet
    publish_packet(b"a/b", b"x" * 300, 1, 7, False, False),  # a two-byte remaining length
    publish_packet(b"$hw/events", b"y" * 20_000, 0, 0, True, False),  # a three-byte one
    packet(4, 0, b"\x00\x07"),
]
STREAM = b"".join(PACKETS)


def expected() -> list[tuple[int, int, bytes]]:
    return FrameDecoder().feed(STREAM)


def test_a_whole_stream_gives_every_packet() -> None:
    frames = expected()
    assert [kind for kind, _, _ in frames] == [12, PUBLISH, PUBLISH, 4]
    assert frames[1][1] == 0x02 and frames[2][1] == 0x01
    assert len(frames[2][2]) == 2 + len(b"$hw/events") + 20_000


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=12, unique=True))
def test_any_split_of_the_stream_gives_the_same_packets(cuts: list[int]) -> None:
    decoder = FrameDecoder()
    frames = []
    bounds = [0, *sorted(cuts), len(STREAM)]
    for start, end in itertools.pairwise(bounds):
        frames += decoder.feed(STREAM[start:end])
    assert frames == expected()
    assert decoder.pending == 0


def test_byte_by_byte_keeps_only_the_unfinished_packet() -> None:
    decoder = FrameDecoder()
    first = PACKETS[1]
    for byte in first[:-1]:
        assert decoder.feed(bytes([byte])) == []
    assert decoder.pending == len(first) - 1
    assert len(decoder.feed(first[-1:])) == 1
    assert decoder.pending == 0


def test_an_oversized_packet_is_refused_from_its_header_alone() -> None:
    decoder = FrameDecoder(max_packet=1000)
    header = bytes([PUBLISH << 4]) + bytes([0xE9, 0x07])  # remaining length 1001, no body yet
    with pytest.raises(ProtocolViolation, match="1001 bytes exceeds the limit of 1000"):
        decoder.feed(header)


def test_a_remaining_length_of_five_bytes_is_malformed() -> None:
    with pytest.raises(ProtocolViolation, match="malformed remaining length"):
        FrameDecoder().feed(bytes([PUBLISH << 4, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]))
