"""A container's files from outside it, for running and stopped containers alike: `docker cp`
both ways (stat, a path as a tar, a tar extracted into a directory), `docker export` and
`docker diff`, as dockerd's daemon/archive.go, export.go and changes.go do them.

cp and export run in a private view of the container's filesystem (containers/fsview.py),
made under the container's lock (so a start cannot mount its snapshot meanwhile) and gone
when the operation ends; the tar streams pass between the view's thread and the event loop
as files (api/images_io.py), so nothing is held in memory but a chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable

from orlop.containers import archive, changes
from orlop.containers.fsview import Bind, ContainerFSView
from orlop.errors import InvalidParameter, NotFound, OrlopError, describe_os_error

NETWORK_FILES = (("/etc/resolv.conf", "ResolvConfPath"), ("/etc/hostname", "HostnamePath"),
                 ("/etc/hosts", "HostsPath"))


class ContainerFiles:
    def __init__(self, containers) -> None:
        self.containers = containers  # the ContainerService

    # -- docker cp -----------------------------------------------------------------------------
    async def stat(self, ref: str, path: str) -> dict:
        record = self.containers.get(ref)
        async with self._view(record) as view:
            return await self._in(view, ref, path, archive.path_stat, archive.container_path(path))

    async def archive(self, ref: str, path: str, start: Callable[[dict], Awaitable[object]]) -> None:
        """The tar of `path`: `start(stat)` is awaited once the path is known to exist and
        returns the file the tar is written to."""
        record = self.containers.get(ref)
        absolute = archive.container_path(path)
        async with self._view(record) as view:
            found = await self._in(view, ref, path, archive.path_stat, absolute)
            out = await start(found)
            await self._in(view, ref, path, archive.write_path, absolute, out)
        self.containers.event(record, "archive-path")

    async def extract(self, ref: str, path: str, stream, *, no_overwrite_dir_non_dir: bool,
                      copy_uid_gid: bool) -> None:
        """Extract the tar read from `stream` (a file, read in the view's thread) into the
        directory `path` of the container."""
        record = self.containers.get(ref)
        mounts = [(m["Destination"], bool(m.get("RW", True))) for m in record.get("Mounts") or []
                  if m.get("Type") in ("volume", "bind")]
        readonly_root = bool(record["HostConfig"].get("ReadonlyRootfs"))
        user = record["Config"].get("User") or ""

        def work() -> None:
            directory = archive.extraction_dir(path)
            to_volume = _check_volume(directory, mounts)
            if not to_volume and readonly_root:
                raise InvalidParameter("container rootfs is marked read-only")
            chown = archive.user_ids(user) if copy_uid_gid else None
            archive.extract(stream, directory, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir, chown=chown)

        async with self._view(record) as view:
            await self._in(view, ref, path, work)
        self.containers.event(record, "extract-to-dir")

    # -- docker export -------------------------------------------------------------------------
    async def export(self, ref: str, start: Callable[[], Awaitable[object]]) -> None:
        """The container's root filesystem as a tar (without its volumes, as dockerd)."""
        record = self.containers.get(ref)
        async with self._view(record, binds=False) as view:
            out = await start()
            await self._in(view, ref, "/", archive.write_root, out)
        self.containers.event(record, "export")

    # -- docker diff ---------------------------------------------------------------------------
    async def changes(self, ref: str) -> list[dict]:
        record = self.containers.get(ref)
        upper, lowers = self.layer_dirs(record)
        return await asyncio.to_thread(changes.changes, upper, lowers)

    def layer_dirs(self, record: dict) -> tuple[str, list[str]]:
        """The container's upper directory and the image's layers, top first."""
        snapshotter = self.containers.images.snapshotter
        upper = snapshotter.upper_path(record["Orlop"]["Snapshot"])
        lowers: list[str] = []
        for mount in snapshotter.mounts(record["Orlop"]["Snapshot"]):
            for option in mount.options:
                if option.startswith("lowerdir="):
                    lowers = option.split("=", 1)[1].split(":")
        return upper, lowers

    # -- the view ------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _view(self, record: dict, binds: bool = True) -> AsyncIterator[ContainerFSView]:
        cid = record["Id"]
        async with self.containers.lock(cid):
            if cid not in self.containers.store.records:
                raise NotFound(f"No such container: {cid}")
            root = os.path.join(self.containers.store.dir(cid), "rootfs")
            root_mounts = self.containers.images.snapshotter.mounts(record["Orlop"]["Snapshot"])
            view = ContainerFSView(root, root_mounts, self._binds(record) if binds else [], name=f"fsview-{cid[:12]}")
            await asyncio.to_thread(view.open)
            try:
                yield view
            finally:
                await asyncio.to_thread(view.close)

    def _binds(self, record: dict) -> list[Bind]:
        binds = []
        volumes = self.containers.volumes
        for mount in record.get("Mounts") or []:
            kind = mount.get("Type")
            if kind == "volume" and volumes is not None:
                try:
                    source = volumes.mountpoint(volumes.get(mount["Name"]))
                except OrlopError:
                    continue
            elif kind == "bind":
                source = mount.get("Source") or ""
            else:
                continue  # a tmpfs lives only in the container
            binds.append(Bind(mount["Destination"], source, not mount.get("RW", True)))
        for destination, key in NETWORK_FILES:
            source = record.get(key) or ""
            if source and os.path.exists(source):
                binds.append(Bind(destination, source, False))
        return binds

    @staticmethod
    async def _in(view: ContainerFSView, ref: str, path: str, fn, *args):
        """Run `fn` in the view; the errors as dockerd reports them."""
        try:
            return await asyncio.wrap_future(view.submit(fn, *args))
        except FileNotFoundError:
            raise NotFound(f"Could not find the file {path} in container {ref}") from None
        except NotADirectoryError:
            raise NotFound(f"Could not find the file {path} in container {ref}") from None
        except OrlopError:
            raise
        except OSError as e:
            raise OrlopError(f"{path} in container {ref}: {describe_os_error(e)}") from None


def _check_volume(path: str, mounts: list[tuple[str, bool]]) -> bool:
    """Whether `path` is in one of the container's volumes or bind mounts (then it must be
    writable), as dockerd's checkIfPathIsInAVolume."""
    for destination, rw in mounts:
        destination = destination.rstrip("/") or "/"
        if path == destination or path.startswith(destination.rstrip("/") + "/"):
            if not rw:
                raise InvalidParameter("mounted volume is marked read-only")
            return True
    return False
