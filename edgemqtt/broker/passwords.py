"""User names and passwords in mosquitto's password file format, so one file serves both brokers.

mosquitto 2.0's ``mosquitto_passwd`` writes ``user:$7$ITERATIONS$SALT$HASH`` (PBKDF2-HMAC-SHA512;
SALT and HASH in base64; 101 iterations and a 12-byte salt by default); older versions wrote
``user:$6$SALT$HASH`` (one SHA-512 of password + salt). Both are verified here, in constant time.
``password_entry`` writes ``$7$`` lines that mosquitto reads too (the cloud side writes the
entries of its nodes with it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
from pathlib import Path

__all__ = ["PasswordFile", "hash_password", "password_entry"]

log = logging.getLogger("edgemqtt.broker")

PBKDF2_ITERATIONS = 101  # mosquitto_passwd's default
_SALT_BYTES = 12
_HASH_BYTES = 64


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None) -> str:
    """A ``$7$`` hash of ``password`` as mosquitto_passwd 2.0 writes it."""
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, _HASH_BYTES)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def password_entry(username: str, password: str) -> str:
    """One line of a password file (without the newline) for ``username``."""
    if not username or ":" in username or "\n" in username:
        raise ValueError(f"user name {username!r} must be non-empty, without ':' or a line break")
    return f"{username}:{hash_password(password)}"


def _verify(password: str, stored: str) -> bool:
    parts = stored.split("$")
    try:
        if len(parts) == 4 and parts[1] == "6":
            salt, expected = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            return hmac.compare_digest(hashlib.sha512(password.encode() + salt).digest(), expected)
        if len(parts) == 5 and parts[1] == "7":
            iterations = int(parts[2])
            salt, expected = base64.b64decode(parts[3]), base64.b64decode(parts[4])
            digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(expected))
            return hmac.compare_digest(digest, expected)
    except (binascii.Error, ValueError):
        return False
    return False


_UNKNOWN_USER = hash_password("", salt=bytes(_SALT_BYTES))


class PasswordFile:
    """The users of a mosquitto password file; ``check(user, password)`` says whether they may log in."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._hashes: dict[str, str] = {}
        self.load()

    def load(self) -> None:
        """(Re)read the file; lines that are not ``user:$6$…`` or ``user:$7$…`` are skipped with a warning."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read password file {self.path}: {exc}") from None
        hashes: dict[str, str] = {}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            username, sep, stored = line.partition(":")
            if not sep or not username or not stored.startswith(("$6$", "$7$")):
                log.warning(
                    "password file %s line %d is not 'user:$7$…' or 'user:$6$…'; skipped", self.path, number
                )
                continue
            hashes[username] = stored
        self._hashes = hashes

    def __contains__(self, username: str) -> bool:
        return username in self._hashes

    def __len__(self) -> int:
        return len(self._hashes)

    def check(self, username: str | None, password: bytes | None) -> bool:
        if username is None or password is None:
            return False
        stored = self._hashes.get(username)
        if stored is None:
            _verify("", _UNKNOWN_USER)  # the same time as for a known user: timing tells no names
            return False
        try:
            text = password.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return _verify(text, stored)
