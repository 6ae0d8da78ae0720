"""What can go wrong starting a container, each error named by the reason Kubernetes shows for it.

Part of edgetwin's error tree (``twin.errors``)::

    PermanentError
    └── PodError                     ``reason`` is the container's waiting reason in status
        ├── ImagePullFailed          ErrImagePull, ErrImageNeverPull (retried with back-off)
        ├── ContainerConfigFailed    CreateContainerConfigError: a ConfigMap/Secret key is missing
        ├── ContainerCreateFailed    CreateContainerError: the runtime refused the container
        └── ContainerStartFailed     RunContainerError: created, but its command could not start
    PodRejected                      the node will not run this pod at all (status ``Failed``)

The pod errors are "permanent" for the attempt (the same spec fails the same way), yet the
supervisor retries them with back-off as the kubelet does: an image can be pushed and a ConfigMap
created later.
"""

from __future__ import annotations

from twin.errors import PermanentError

__all__ = [
    "ContainerConfigFailed",
    "ContainerCreateFailed",
    "ContainerStartFailed",
    "ImagePullFailed",
    "PodError",
    "PodRejected",
    "RuntimeUnavailable",
]


class PodError(PermanentError):
    """A container could not be started; ``reason`` names why as Kubernetes does."""

    reason = "CreateContainerError"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class ImagePullFailed(PodError):
    reason = "ErrImagePull"


class ContainerConfigFailed(PodError):
    reason = "CreateContainerConfigError"


class ContainerCreateFailed(PodError):
    reason = "CreateContainerError"


class ContainerStartFailed(PodError):
    reason = "RunContainerError"


class PodRejected(PermanentError):
    """A pod spec this node's runtime cannot honour; ``reasons`` names every field it refuses."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class RuntimeUnavailable(PermanentError):
    """The configured runtime cannot run here (podman missing, storage unusable)."""
