"""The image store: which names point at which manifests, kept in one JSON file
written atomically (temp, fsync, rename), beside the content store holding the
blobs themselves."""

from __future__ import annotations

import json
import os
import time

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


class ImageStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self.path = os.path.join(root, "images.json")
        os.makedirs(root, 0o700, exist_ok=True)

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
        self._save(images)
