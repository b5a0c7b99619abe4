"""GET /system/df: `docker system df [-v]`, in API 1.45's shape (moby's daemon/disk_usage.go).

Sizes are those `docker images` and `docker ps -s` show: an image's is the sum of its
layer blobs, a layer shared by several images counts once in LayersSize and in each
image's SharedSize; a container's SizeRw is its writable layer, SizeRootFs that plus its
image; a volume's UsageData is the size of its files and the number of containers using
it. The classic builder keeps no BuildKit cache records: BuildCache is empty.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from orlop.api.common import json_response
from orlop.api.containers import container_summary
from orlop.api.images import image_summaries
from orlop.errors import InvalidParameter
from orlop.fsutil import tree_size

KINDS = ("container", "image", "volume", "build-cache")


class DiskUsageRoutes:
    def __init__(self, containers, volumes) -> None:
        self.containers = containers  # the ContainerService
        self.volumes = volumes

    def register(self, add) -> None:
        add("GET", "/system/df", self.disk_usage)

    async def disk_usage(self, request: web.Request) -> web.Response:
        kinds = request.query.getall("type", []) or list(KINDS)
        for kind in kinds:
            if kind not in KINDS:
                raise InvalidParameter(f"unknown object type: {kind}")
        answer: dict = {"LayersSize": 0, "Images": None, "Containers": None, "Volumes": None, "BuildCache": None}
        # The records are taken here, on the loop that changes them; the sizes in a thread.
        records = sorted(self.containers.store.records.values(), key=lambda r: r["Created"], reverse=True)
        if "image" in kinds:
            answer["LayersSize"], answer["Images"] = await asyncio.to_thread(self._images,
                                                                             self.containers.used_images())
        if "container" in kinds:
            answer["Containers"] = await asyncio.to_thread(self._containers, records)
        if "volume" in kinds:
            references: dict[str, int] = {}
            for record in records:
                for name in {m.get("Name") for m in record.get("Mounts") or [] if m.get("Type") == "volume"}:
                    references[name] = references.get(name, 0) + 1
            answer["Volumes"] = await asyncio.to_thread(self._volumes, references)
        if "build-cache" in kinds:
            answer["BuildCache"] = []
        return json_response(answer)

    def _images(self, used: dict[str, list[str]]) -> tuple[int, list[dict]]:
        images = self.containers.images
        summaries = image_summaries(images, used)
        layers_of: dict[str, dict[str, int]] = {}
        for record in images.images.list():
            if record.config not in layers_of:
                manifest = json.loads(images.content.read(record.manifest))
                layers_of[record.config] = {layer["digest"]: layer.get("size", 0) for layer in manifest["layers"]}
        users: dict[str, int] = {}
        for layers in layers_of.values():
            for digest in layers:
                users[digest] = users.get(digest, 0) + 1
        sizes = {digest: size for layers in layers_of.values() for digest, size in layers.items()}
        for summary in summaries:
            layers = layers_of.get(summary["Id"], {})
            summary["SharedSize"] = sum(size for digest, size in layers.items() if users[digest] > 1)
        return sum(sizes.values()), summaries

    def _containers(self, records: list[dict]) -> list[dict]:
        out = []
        for record in records:
            summary = container_summary(record)
            summary["SizeRw"], summary["SizeRootFs"] = self.containers.sizes(record)
            out.append(summary)
        return out

    def _volumes(self, references: dict[str, int]) -> list[dict]:
        out = []
        for meta in self.volumes.list():
            shown = {k: v for k, v in meta.items() if k != "Orlop"}
            shown["UsageData"] = {"Size": tree_size(meta["Mountpoint"]),
                                  "RefCount": references.get(meta["Name"], 0)}
            out.append(shown)
        return out
