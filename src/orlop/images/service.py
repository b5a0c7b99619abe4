"""The image service orlopd serves: the stores under one data root, names resolved as the
docker CLI gives them, pulls streamed as progress events, images unpacked into snapshots."""

from __future__ import annotations

import asyncio
import json
import os

from orlop.errors import InvalidParameter, NotFound
from orlop.images import manage
from orlop.images.content import ContentStore
from orlop.images.reference import InvalidReference, parse
from orlop.images.store import ImageNotFound, ImageRecord, ImageStore
from orlop.snapshots import OverlaySnapshotter


class ImageService:
    def __init__(self, data_root: str, insecure_hosts: frozenset[str] = frozenset()) -> None:
        self.content = ContentStore(os.path.join(data_root, "content"))
        self.images = ImageStore(os.path.join(data_root, "images"))
        self.snapshotter = OverlaySnapshotter(os.path.join(data_root, "snapshots"))
        self.insecure_hosts = insecure_hosts
        self.mirrors: tuple[str, ...] = ()  # daemon.json's registry-mirrors, for Docker Hub's images
        self.max_concurrent_downloads = 3
        self._unpack_lock = asyncio.Lock()

    def reclaim(self) -> list[str]:
        """At orlopd's start, what unpacks and writes a crash interrupted left: the writable
        snapshots of unpacks, the snapshotter's orphans, the content store's ingests (but a
        pull's, which the next pull resumes). The names of what was removed."""
        from orlop.snapshots import ACTIVE

        removed = []
        for info in list(self.snapshotter.walk()):
            if info.kind == ACTIVE and info.name.startswith("extract-"):
                self.snapshotter.remove(info.name)
                removed.append(info.name)
        removed += self.snapshotter.cleanup()
        ingests = self.content.prune_ingests(keep_resumable=True)
        if ingests:
            removed.append(f"{ingests} abandoned content ingests")
        return removed

    def normalise(self, name: str) -> str:
        try:
            return str(parse(name))
        except InvalidReference as e:
            raise InvalidParameter(str(e)) from None

    def resolve(self, name: str) -> ImageRecord:
        """A name as typed (busybox, busybox:1, host/x@sha256:…) or an image ID (prefix)."""
        try:
            return manage.get_record(self.images, self.normalise(name))
        except (ImageNotFound, InvalidParameter):
            try:
                return manage.get_record(self.images, name)
            except ImageNotFound:
                raise NotFound(f"No such image: {_with_default_tag(name)}") from None

    def config(self, record: ImageRecord) -> dict:
        return json.loads(self.content.read(record.config))

    async def unpacked(self, record: ImageRecord) -> str:
        """The chain ID of the image's top snapshot, unpacking what is missing (one at a time)."""
        from orlop.images.unpack import unpack_image

        async with self._unpack_lock:
            return await asyncio.to_thread(unpack_image, record, self.content, self.snapshotter)

    async def pull(self, name: str, platform: str | None, credentials, progress) -> ImageRecord:
        from orlop.images.pull import parse_platform, pull
        from orlop.images.unpack import unpack_image

        ref = parse(name)
        final: list[dict] = []  # "Digest:" and "Status:" come last, after the layers are unpacked

        def pulled(event: dict) -> None:
            (final.append if event.get("status", "").startswith(("Digest:", "Status:")) else progress)(event)

        def unpacked(event: dict) -> None:
            if event.get("status") != "Already exists":  # the pull said so already
                progress(event)

        async def unpack(record: ImageRecord) -> None:  # before the name is given
            async with self._unpack_lock:
                await asyncio.to_thread(unpack_image, record, self.content, self.snapshotter, unpacked)

        record = await pull(ref, self.content, self.images, credentials=credentials,
                            platform=parse_platform(platform) if platform else None,
                            insecure_hosts=self.insecure_hosts, progress=pulled, prepare=unpack,
                            mirrors=self.mirrors, concurrency=self.max_concurrent_downloads)
        for event in final:
            progress(event)
        return record


def _with_default_tag(name: str) -> str:
    """A name as dockerd reports it missing: with the tag it looked for ("busybox:latest");
    IDs, digests and tagged names as given."""
    last = name.rsplit("/", 1)[-1]
    if ":" in last or "@" in name or all(c in "0123456789abcdef" for c in name.removeprefix("sha256:")):
        return name
    return name + ":latest"
