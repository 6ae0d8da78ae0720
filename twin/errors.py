"""The one error tree of edgetwin.

Every failure a user or a device can cause is one of these classes, so that callers decide
"retry later" or "give up and tell someone" from the type alone (kopf's TemporaryError /
PermanentError split)::

    EdgetwinError
    ├── TemporaryError              retry after a delay
    │   ├── DeviceUnreachable       the device or its bus does not answer
    │   └── BrokerUnavailable       the MQTT broker cannot be reached
    └── PermanentError              retrying the same input fails the same way
        ├── InvalidPayload          bytes that are not the JSON body a topic needs      (400)
        ├── InvalidManifest         YAML that is not a valid Device / DeviceModel
        ├── UnknownDevice           no such device on this node                         (404)
        ├── UnknownProperty         the device has no such property                     (400)
        ├── InvalidValue            a value the twin refuses                            (400)
        │   ├── TypeMismatch        "abc" for an INT
        │   ├── OutOfRange          below minimum / above maximum
        │   ├── ReadOnlyProperty    a desired value for a ReadOnly property
        │   └── ForbiddenKey        a key or value outside KubeEdge's character rules
        ├── VersionConflict         a cloud write that lost a race with a local write  (409)
        ├── RequestRefused          the twin answered a client's request with an error
        ├── DeviceRefused           the device answered with an error (Modbus exception…)
        ├── BrokerRefused           the MQTT broker refused the login, TLS or a subscription
        └── StoreCorrupt            a file of the twin store that cannot be read

Packages add leaves where the error is theirs alone (``mappers.PluginUnavailable``, a
PermanentError; ``api_server``'s Kubernetes ``Status`` errors, which never leave the
API server).

Library exceptions are translated once, at the boundary, into the most specific class here
(``raise DeviceUnreachable(...) from exc``). Each class carries the MQTT result ``code`` it maps to.
"""

from __future__ import annotations


class EdgetwinError(Exception):
    """Base of every edgetwin error; ``code`` is the HTTP-like code used on MQTT result topics."""

    code: int = 500


class TemporaryError(EdgetwinError):
    """The same request may succeed later (a device or broker that is down)."""

    code = 503


class PermanentError(EdgetwinError):
    """The same request will fail the same way: report it, do not retry."""

    code = 400


class DeviceUnreachable(TemporaryError):
    """The device (or the bus it hangs on) does not answer."""


class BrokerUnavailable(TemporaryError):
    """The MQTT broker cannot be reached or dropped the connection."""


class InvalidPayload(PermanentError):
    """A message body that is not what its topic requires (bad JSON, missing keys, too large)."""


class InvalidManifest(PermanentError):
    """A Device or DeviceModel manifest that cannot be loaded; the message names file, object and field."""


class UnknownDevice(PermanentError):
    """No device with this id on this node."""

    code = 404


class UnknownProperty(PermanentError):
    """The device (its DeviceModel) declares no property of this name."""


class InvalidValue(PermanentError):
    """A value the twin refuses for a property."""


class TypeMismatch(InvalidValue):
    """The value does not parse as the property's DeviceModel type."""


class OutOfRange(InvalidValue):
    """The value lies outside the property's minimum/maximum."""


class ReadOnlyProperty(InvalidValue):
    """A desired value for a property whose accessMode is ReadOnly."""


class ForbiddenKey(InvalidValue):
    """A twin key or value outside KubeEdge's allowed characters or lengths."""


class VersionConflict(PermanentError):
    """A cloud write whose edge version is behind the local one: the local write wins."""

    code = 409


class RequestRefused(PermanentError):
    """The twin service answered a request with an error result; ``code`` is the result's code."""

    def __init__(self, reason: str, code: int = 400) -> None:
        super().__init__(reason)
        self.code = code


class DeviceRefused(PermanentError):
    """The device answered a request with an error (a Modbus exception code, an OPC UA bad status)."""


class BrokerRefused(PermanentError):
    """The MQTT broker refused us for a reason a retry does not change: a bad user name or password,
    not authorised, an untrusted TLS certificate, a subscription outside its ACL (or an unusable
    broker address). A person must change a setting first."""


class StoreCorrupt(PermanentError):
    """A file of the twin store that cannot be read; it is moved aside, never silently overwritten."""
