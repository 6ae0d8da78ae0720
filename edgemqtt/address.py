"""Where a broker listens and how to reach it: host, port, credentials and TLS settings.

One place parses broker URLs (``mqtt://`` and ``mqtts://``, percent-decoded credentials) and one
place builds the TLS context, so that every client and command gets the same rules and the same
errors. A password never leaves this object in readable form: ``repr``, ``str``, ``url`` and every
error message show the address without it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edgemqtt.errors import InvalidBrokerAddress, InvalidBrokerUrl, InvalidTlsFiles

__all__ = ["PLAIN_PORT", "TLS_PORT", "BrokerAddress", "redact_url"]

PLAIN_PORT = 1883
TLS_PORT = 8883
_PLAIN_SCHEMES = ("mqtt", "tcp")
_TLS_SCHEMES = ("mqtts", "ssl")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages about a URL that did not parse.

    The password is whatever follows the first ``:`` of the user info, up to the LAST ``@``: an
    unencoded ``@`` or ``/`` in it (``mqtt://u:p@ss/x@host``) must not leak either.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    user_info, at, host_part = rest.rpartition("@")
    if not at:
        return url
    user = user_info.split(":", 1)[0]
    shown = f"{user}:***" if ":" in user_info else user
    return f"{scheme}{sep}{shown}@{host_part}"


@dataclass(frozen=True)
class BrokerAddress:
    """A broker to connect to; ``parse`` reads ``mqtt[s]://[user[:password]@]host[:port]``.

    ``tls`` (implied by ``mqtts://``) wraps the connection in TLS with host-name checking; the
    broker's certificate is checked against ``ca_file`` or, without one, the system's CAs.
    ``cert_file`` (and ``key_file`` unless the key is in the same file) is a client certificate.
    """

    host: str = "127.0.0.1"
    port: int = PLAIN_PORT
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise InvalidBrokerUrl(f"bad port {self.port} for broker {self.host} (0-65535)")
        if not self.tls and (self.ca_file or self.cert_file or self.key_file):
            raise InvalidBrokerAddress(
                f"TLS files given for the plain broker {self.url}: use mqtts://{self._netloc()}"
            )
        if self.key_file is not None and self.cert_file is None:
            raise InvalidBrokerAddress("a TLS key file without a certificate file (--tls-cert)")

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """Parse a broker URL; ``InvalidBrokerUrl`` (with the password hidden) if it cannot be used."""
        text = url.strip()
        if "://" not in text:
            text = f"mqtt://{text}"
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError as exc:
            raise InvalidBrokerUrl(
                f"bad broker URL {redact_url(text)!r}: {_port_problem(str(exc))} (use mqtt://HOST:PORT)"
            ) from None
        scheme = parts.scheme.lower()
        if scheme not in _PLAIN_SCHEMES + _TLS_SCHEMES:
            raise InvalidBrokerUrl(
                f"unsupported broker URL scheme {scheme!r} in {redact_url(text)!r} "
                "(use mqtt://HOST:PORT or mqtts://HOST:PORT)"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise InvalidBrokerUrl(
                f"bad broker URL {redact_url(text)!r}: it has a path or query; a '/', '@' or ':' in a "
                "user name or password is written %2F, %40, %3A"
            )
        tls = scheme in _TLS_SCHEMES
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port if port is not None else (TLS_PORT if tls else PLAIN_PORT),
            username=None if parts.username is None else unquote(parts.username),
            password=None if parts.password is None else unquote(parts.password),
            tls=tls,
        )

    def with_tls_files(
        self, ca_file: Path | None = None, cert_file: Path | None = None, key_file: Path | None = None
    ) -> BrokerAddress:
        """This address with TLS files set (only those given); each must exist and be readable."""
        for what, path in (("CA", ca_file), ("certificate", cert_file), ("key", key_file)):
            if path is not None and not path.is_file():
                raise InvalidTlsFiles(f"TLS {what} file {path} does not exist or is not a file")
        return replace(
            self,
            ca_file=ca_file or self.ca_file,
            cert_file=cert_file or self.cert_file,
            key_file=key_file or self.key_file,
        )

    def with_credentials(self, username: str | None, password: str | None) -> BrokerAddress:
        return replace(self, username=username, password=password)

    @property
    def url(self) -> str:
        """``mqtt[s]://host:port``, without credentials: safe to print and to log."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self._netloc()}"

    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        if self.username is None:
            return self.url
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.username}@{self._netloc()}"

    def __repr__(self) -> str:
        password = "" if self.password is None else ", password='***'"
        files = "".join(
            f", {name}={value!r}"
            for name, value in (
                ("ca_file", self.ca_file),
                ("cert_file", self.cert_file),
                ("key_file", self.key_file),
            )
            if value is not None
        )
        return (
            f"BrokerAddress(host={self.host!r}, port={self.port}, username={self.username!r}{password}, "
            f"tls={self.tls}{files})"
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client's TLS context (host names checked), or ``None`` for a plain connection."""
        if not self.tls:
            return None
        try:
            context = ssl.create_default_context(cafile=None if self.ca_file is None else str(self.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise InvalidTlsFiles(f"cannot use TLS CA file {self.ca_file}: {_reason(exc)}") from None
        if self.cert_file is not None:
            try:
                context.load_cert_chain(
                    str(self.cert_file), None if self.key_file is None else str(self.key_file)
                )
            except (OSError, ssl.SSLError) as exc:
                raise InvalidTlsFiles(
                    f"cannot use TLS certificate {self.cert_file}"
                    f"{'' if self.key_file is None else f' with key {self.key_file}'}: {_reason(exc)}"
                ) from None
        return context


def _port_problem(message: str) -> str:
    # urllib's messages quote the port text, which may be part of a mistyped password.
    if "out of range" in message:
        return "the port is out of range 0-65535"
    if "Port could not be cast" in message or "invalid literal" in message:
        return "the port is not a number"
    return "it cannot be parsed"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
