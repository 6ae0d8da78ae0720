"""MQTT 3.1.1 wire format: packet framing, field readers, topic rules, shared by client and broker."""

from __future__ import annotations

import asyncio
import struct

from edgemqtt.errors import ProtocolViolation

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

MAX_PACKET = 16 * 1024 * 1024


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching, with mosquitto's rule for ``$`` topics."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


def valid_filter(topic_filter: str) -> bool:
    if not topic_filter:
        return False
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def valid_topic(topic: str) -> bool:
    return bool(topic) and "+" not in topic and "#" not in topic


def encode_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte = length % 128
        length //= 128
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


def encode_string(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([(kind << 4) | flags]) + encode_length(len(body)) + body


def publish_packet(topic: bytes, payload: bytes, qos: int, packet_id: int, retain: bool, dup: bool) -> bytes:
    flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    body = encode_string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return packet(PUBLISH, flags, body)


class PacketReader:
    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    async def packet(self, only: int | None = None) -> tuple[int, int, bytes]:
        """The next packet as (type, flags, body); ``only``: refuse another type before its body."""
        first = await self._reader.readexactly(1)
        if only is not None and first[0] >> 4 != only:
            raise ProtocolViolation(f"packet type {first[0] >> 4} where {only} was due")
        length, multiplier = 0, 1
        for _ in range(4):
            byte = (await self._reader.readexactly(1))[0]
            length += (byte & 0x7F) * multiplier
            if not byte & 0x80:
                break
            multiplier *= 128
        else:
            raise ProtocolViolation("malformed remaining length")
        if length > MAX_PACKET:
            raise ProtocolViolation(f"packet of {length} bytes exceeds {MAX_PACKET}")
        body = await self._reader.readexactly(length) if length else b""
        return first[0] >> 4, first[0] & 0x0F, body


class PacketBody:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise ProtocolViolation("packet too short")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def u16(self) -> int:
        if self.pos + 2 > len(self.data):
            raise ProtocolViolation("packet too short")
        (value,) = struct.unpack_from("!H", self.data, self.pos)
        self.pos += 2
        return int(value)

    def packet_id(self) -> int:
        packet_id = self.u16()
        if not packet_id:
            raise ProtocolViolation("packet identifier 0")
        return packet_id

    def raw(self) -> bytes:
        length = self.u16()
        if self.pos + length > len(self.data):
            raise ProtocolViolation("string runs past the packet")
        value = self.data[self.pos : self.pos + length]
        self.pos += length
        return value

    def text(self) -> str:
        try:
            value = self.raw().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolViolation("string is not UTF-8") from exc
        if "\x00" in value:
            raise ProtocolViolation("string contains U+0000")  # MQTT-1.5.3-2
        return value

    def rest(self) -> bytes:
        return self.data[self.pos :]

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)
