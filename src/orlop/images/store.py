"""The image store: which names point at which manifests, kept in one JSON file
written atomically (temp, fsync, rename), beside the content store holding the
blobs themselves.

Removing an image rewrites that file before its blobs can go, so on a disk filled to the
last byte `docker rmi` could never free anything. The store keeps a little room for it:
`room-to-remove`, a file of RESERVE bytes made when there is plenty of space, given up by
a removal that finds none."""

from __future__ import annotations

import contextlib
import json
import os
import time

from orlop.errors import DISK_FULL
from orlop.fsutil import write_atomic


class ImageNotFound(LookupError):
    pass


def dangling_name(config: str) -> str:
    """The name an image that has none is kept under (its ID, `sha256:<hex>`): Docker's
    dangling `<none>:<none>` images, e.g. a loaded or imported image without a tag."""
    return config


class ImageRecord:
    __slots__ = ("name", "target", "manifest", "config", "created", "distributed")

    def __init__(self, name: str, target: str, manifest: str, config: str, created: float | None = None,
                 distributed: bool = False) -> None:
        self.name = name          # normalised reference, e.g. docker.io/library/busybox:latest
        self.target = target      # digest the name resolved to (an index or a manifest)
        self.manifest = manifest  # the platform's image manifest
        self.config = config      # its config blob: the image ID
        self.created = created or time.time()
        self.distributed = distributed  # pulled from or pushed to the name's registry: it has a RepoDigest

    @property
    def dangling(self) -> bool:
        return self.name == self.config

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__ if name != "name"}


RESERVE = 1 << 20


class ImageStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self.path = os.path.join(root, "images.json")
        self.room = os.path.join(root, "room-to-remove")
        os.makedirs(root, 0o700, exist_ok=True)
        self.keep_room()

    def keep_room(self) -> None:
        """Make the room removals may need, if it is missing and the disk has plenty."""
        if os.path.exists(self.room):
            return
        with contextlib.suppress(OSError):
            st = os.statvfs(self.root)
            if st.f_bavail * st.f_frsize < 8 * RESERVE:
                return
            tmp = self.room + ".tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, RESERVE)
            finally:
                os.close(fd)
            os.rename(tmp, self.room)

    def _load(self) -> dict:
        try:
            with open(self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def _save(self, images: dict) -> None:
        write_atomic(self.path, json.dumps(images, indent=1, sort_keys=True).encode())

    def put(self, record: ImageRecord) -> None:
        """Point `record.name` at its image, as dockerd names images: the image the name
        pointed to before stays, as a dangling one, if no other name keeps it; an image
        that gets a name is no longer kept as dangling."""
        images = self._load()
        old = images.get(record.name)
        if not record.dangling:
            if old is not None and old["config"] != record.config and not any(
                    e["config"] == old["config"] for n, e in images.items() if n != record.name):
                images[dangling_name(old["config"])] = {**old, "distributed": False}
            images.pop(dangling_name(record.config), None)
        images[record.name] = record.to_json()
        self.keep_room()
        self._save(images)

    def get(self, name: str) -> ImageRecord:
        entry = self._load().get(name)
        if entry is None:
            raise ImageNotFound(f"No such image: {name}")
        return ImageRecord(name, **entry)

    def list(self) -> list[ImageRecord]:
        return [ImageRecord(name, **entry) for name, entry in sorted(self._load().items())]

    def remove(self, name: str) -> None:
        images = self._load()
        if images.pop(name, None) is None:
            raise ImageNotFound(f"No such image: {name}")
        try:
            self._save(images)
        except OSError as e:
            if e.errno not in DISK_FULL or not os.path.exists(self.room):
                raise
            os.unlink(self.room)  # what it was kept for: the removal then frees the image's blobs
            self._save(images)
