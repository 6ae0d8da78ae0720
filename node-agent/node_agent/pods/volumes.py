"""A pod's volumes made real on the gateway's disk, as host paths a runtime can mount.

``emptyDir`` is a folder under the pod's own folder (kept across container restarts, removed with
the pod); ``hostPath`` is checked against its ``type``; ``configMap`` and ``secret`` are written
out as files (``items``, ``defaultMode`` and per-item modes honoured) when
a container starts. A missing source that is not ``optional`` raises, naming it; the container
then waits with that reason.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from node_agent.pods.admission import is_service_account_mount
from node_agent.pods.errors import ContainerConfigFailed, ContainerCreateFailed
from node_agent.pods.runtime import Mount
from node_agent.pods.spec import BoundPod, Container, HostPathSource, KeyToPath, Volume

__all__ = ["mounts_for"]

_HOST_PATH_CHECKS = {
    "Directory": stat.S_ISDIR,
    "File": stat.S_ISREG,
    "Socket": stat.S_ISSOCK,
    "CharDevice": stat.S_ISCHR,
    "BlockDevice": stat.S_ISBLK,
}


def _host_path(source: HostPathSource) -> Path:
    path = Path(source.path)
    kind = source.type
    if kind == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True, mode=0o755)
    elif kind == "FileOrCreate":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o644, exist_ok=True)
    elif kind in _HOST_PATH_CHECKS:
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise ContainerCreateFailed(f"hostPath {path} does not exist (type {kind})") from None
        if not _HOST_PATH_CHECKS[kind](mode):
            raise ContainerCreateFailed(f"hostPath {path} is not a {kind}")
    return path


def _safe_relative(path: str) -> PurePosixPath:
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ContainerConfigFailed(f"volume item path {path!r} must be relative, without '..'")
    return relative


def _write_files(
    folder: Path, data: dict[str, bytes], items: list[KeyToPath], default_mode: int, what: str
) -> None:
    """Lay out ``data`` in ``folder`` (fresh each time, so removed keys go away)."""
    if items:
        missing = [item.key for item in items if item.key not in data]
        if missing:
            raise ContainerConfigFailed(f"{what}: no key {', '.join(missing)}")
        files = {_safe_relative(item.path): (data[item.key], item.mode) for item in items}
    else:
        files = {_safe_relative(key): (value, None) for key, value in data.items()}
    folder.mkdir(parents=True, exist_ok=True)
    for old in sorted(folder.rglob("*"), reverse=True):
        if old.is_dir():
            old.rmdir()
        else:
            old.unlink()
    for relative, (content, mode) in files.items():
        target = folder.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
        target.chmod(mode if mode is not None else default_mode)


def _volume_path(bound: BoundPod, volume: Volume, pod_folder: Path) -> Path:
    folder = pod_folder / "volumes" / volume.name
    if volume.empty_dir is not None:
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    if volume.host_path is not None:
        return _host_path(volume.host_path)
    if volume.config_map is not None:
        source = volume.config_map
        found = bound.config_maps.get(source.name)
        data = found.items() if found is not None else None
        what = f'configmap "{source.name}"'
        items, mode = source.items, source.default_mode
    elif volume.secret is not None:
        secret = volume.secret
        found_secret = bound.secrets.get(secret.secret_name)
        data = found_secret.items() if found_secret is not None else None
        what = f'secret "{secret.secret_name}"'
        items, mode, source_optional = secret.items, secret.default_mode, secret.optional
        if data is None and not source_optional:
            raise ContainerConfigFailed(f"{what} not found")
        _write_files(folder, data or {}, items, mode, what)
        return folder
    else:
        raise ContainerCreateFailed(f"volume {volume.name}: type {volume.kind()} is not supported")
    if data is None and not source.optional:
        raise ContainerConfigFailed(f"{what} not found")
    _write_files(folder, data or {}, items, mode, what)
    return folder


def mounts_for(bound: BoundPod, container: Container, pod_folder: Path) -> list[Mount]:
    """The host paths to mount for ``container``, creating or refreshing them."""
    volumes = {volume.name: volume for volume in bound.pod.spec.volumes}
    mounts = []
    for mount in container.volume_mounts:
        if is_service_account_mount(bound.pod, mount.name, mount.mount_path):
            continue
        source = _volume_path(bound, volumes[mount.name], pod_folder)
        if mount.sub_path:
            source = source.joinpath(*_safe_relative(mount.sub_path).parts)
            if not source.exists():
                source.mkdir(parents=True)
        mounts.append(Mount(source=source, target=mount.mount_path, read_only=mount.read_only))
    return mounts
