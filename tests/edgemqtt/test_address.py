"""Broker URLs: schemes, ports, percent-encoded credentials, and a password that never shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgemqtt.address import BrokerAddress, redact_url
from edgemqtt.errors import InvalidBrokerAddress, InvalidBrokerUrl, InvalidTlsFiles


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("mqtt://10.0.0.5:1884", BrokerAddress("10.0.0.5", 1884)),
        ("127.0.0.1", BrokerAddress("127.0.0.1", 1883)),
        ("mqtt://user:pw@host", BrokerAddress("host", 1883, "user", "pw")),
        ("tcp://h:1", BrokerAddress("h", 1)),
        ("mqtts://h", BrokerAddress("h", 8883, tls=True)),
        ("mqtts://u:p@h:9999", BrokerAddress("h", 9999, "u", "p", tls=True)),
        ("MQTTS://h:1", BrokerAddress("h", 1, tls=True)),
        ("mqtt://[::1]:1884", BrokerAddress("::1", 1884)),
        ("mqtt://user@host", BrokerAddress("host", 1883, "user")),
    ],
)
def test_broker_urls_are_parsed(url: str, address: BrokerAddress) -> None:
    assert BrokerAddress.parse(url) == address


@pytest.mark.parametrize(
    ("url", "user", "password"),
    [
        ("mqtts://node%2F1:p%40ss@h", "node/1", "p@ss"),
        ("mqtt://u:a%3Ab%2Fc%40d%25@h:1", "u", "a:b/c@d%"),
        ("mqtt://u:p@ss@h:1", "u", "p@ss"),  # an unencoded @ still works: the last @ ends the user info
    ],
)
def test_credentials_are_percent_decoded(url: str, user: str, password: str) -> None:
    address = BrokerAddress.parse(url)
    assert (address.username, address.password) == (user, password)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://u:s3cret@h:1", "unsupported broker URL scheme 'http'"),
        ("mqtt://u:s3cret@h:notaport", "the port is not a number"),
        ("mqtt://u:s3cret@h:99999", "the port is out of range"),
        ("mqtt://u:s3cret/x@h:1", "bad broker URL"),  # an unencoded / cuts the URL short
        ("mqtt://u:s3cret@h:1/path", "it has a path"),
    ],
)
def test_a_bad_url_is_one_clear_error_without_the_password(url: str, message: str) -> None:
    with pytest.raises(InvalidBrokerUrl, match=message) as refused:
        BrokerAddress.parse(url)
    assert "s3cret" not in str(refused.value)
    error = refused.value  # nor in a chained exception a traceback would show
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_the_password_never_shows_in_repr_str_or_url() -> None:
    address = BrokerAddress.parse("mqtts://alice:s3cret@broker.example:8884")
    for shown in (repr(address), str(address), address.url, f"{address}"):
        assert "s3cret" not in shown
    assert str(address) == "mqtts://alice@broker.example:8884"
    assert address.url == "mqtts://broker.example:8884"
    assert "password='***'" in repr(address)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mqtt://u:pw@h:1", "mqtt://u:***@h:1"),
        ("mqtt://u:p@w/x@h:1", "mqtt://u:***@h:1"),
        ("mqtt://u@h", "mqtt://u@h"),
        ("mqtt://h:1", "mqtt://h:1"),
    ],
)
def test_redacted_urls_hide_every_form_of_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_tls_files_need_an_mqtts_url_and_must_exist(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    with pytest.raises(InvalidTlsFiles, match="does not exist"):
        BrokerAddress.parse("mqtts://h").with_tls_files(ca_file=ca)
    ca.write_text("not a certificate")
    with pytest.raises(InvalidBrokerAddress, match="use mqtts://h:1883"):
        BrokerAddress.parse("mqtt://h").with_tls_files(ca_file=ca)
    address = BrokerAddress.parse("mqtts://h").with_tls_files(ca_file=ca)
    with pytest.raises(InvalidTlsFiles, match=f"cannot use TLS CA file {ca}"):
        address.ssl_context()


def test_a_key_without_a_certificate_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("x")
    with pytest.raises(InvalidBrokerAddress, match="key file without a certificate"):
        BrokerAddress.parse("mqtts://h").with_tls_files(key_file=key)
