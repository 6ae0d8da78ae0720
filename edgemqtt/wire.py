"""MQTT 3.1.1 wire format, shared by client and broker: the one frame decoder, field readers, topic rules."""

from __future__ import annotations

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


class FrameDecoder:
    """Cuts a byte stream into MQTT packets, incrementally: the one decoder of the wire format.

    ``feed(data)`` returns the packets completed by ``data`` as ``(type, flags, body)`` and keeps
    the rest for the next call. A remaining length over ``max_packet`` is refused as soon as its
    header is read, before any of its body is buffered. A malformed packet raises
    ``ProtocolViolation``; if good packets came before it in the same chunk, they are returned
    first and the error is raised by ``check()`` (call it after handling them) and the next feed.

    The client calls it from ``data_received`` for every chunk, so it is written for speed: chunks
    that start on a packet boundary (the usual case) are cut without being copied first.
    """

    __slots__ = ("_buffer", "error", "max_packet")

    def __init__(self, max_packet: int = MAX_PACKET) -> None:
        self.max_packet = max_packet
        self._buffer = bytearray()
        #: The violation found after the packets the last ``feed`` returned (see ``check``).
        self.error: ProtocolViolation | None = None

    def check(self) -> None:
        """Raise the violation found after the packets the last ``feed`` returned, if any."""
        if self.error is not None:
            raise self.error

    @property
    def pending(self) -> int:
        """Bytes held of a packet that is not complete yet (0 between packets)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """The packets completed by ``data``; ``ProtocolViolation`` for a malformed or oversized one."""
        if self.error is not None:
            raise self.error
        kept = self._buffer
        buffer: bytes | bytearray
        if kept:
            kept += data
            buffer = kept
        else:
            buffer = data
        size = len(buffer)
        pos = 0
        frames: list[tuple[int, int, bytes]] = []
        max_packet = self.max_packet
        try:
            while size - pos >= 2:
                length, shift, index = 0, 0, pos + 1
                while True:
                    if index >= size:
                        length = -1  # the length is not all here yet
                        break
                    byte = buffer[index]
                    index += 1
                    length |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        raise ProtocolViolation("malformed remaining length")
                if length < 0:
                    break
                if length > max_packet:
                    raise ProtocolViolation(f"packet of {length} bytes exceeds the limit of {max_packet}")
                end = index + length
                if end > size:
                    break  # the body is not all here yet
                first = buffer[pos]
                frames.append((first >> 4, first & 0x0F, bytes(buffer[index:end])))
                pos = end
        except ProtocolViolation as exc:
            if not frames:
                raise
            self.error = exc  # the good packets before it first; check() raises it after them
            return frames
        if kept:
            if pos:
                del kept[:pos]
        elif pos < size:
            kept += data[pos:] if pos else data
        return frames


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
