"""The Engine API's volume endpoints (`docker volume …`)."""

from __future__ import annotations

from aiohttp import web

from orlop.api.common import boolean, json_body, json_response, matches_filters, no_content, query_filters
from orlop.containers.service import ContainerService
from orlop.errors import InvalidParameter
from orlop.volumes import VolumeService


def _shown(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k != "Orlop"}


class VolumeRoutes:
    def __init__(self, volumes: VolumeService, containers: ContainerService, events) -> None:
        self.volumes = volumes
        self.containers = containers
        self.events = events

    def register(self, add) -> None:
        add("GET", "/volumes", self.list)
        add("POST", "/volumes/create", self.create)
        add("POST", "/volumes/prune", self.prune)
        add("GET", "/volumes/{name}", self.inspect)
        add("DELETE", "/volumes/{name}", self.remove)

    def _matches(self, meta: dict, filters: dict[str, list[str]]) -> bool:
        checks = {
            "name": lambda v: v in meta["Name"],
            "driver": lambda v: v == meta["Driver"],
            "dangling": lambda v: (not self.containers.volume_users(meta["Name"])) == (v.lower() in ("true", "1")),
            "all": lambda v: True,
        }
        return matches_filters(filters, checks, meta["Labels"] or {})

    async def list(self, request: web.Request) -> web.Response:
        filters = query_filters(request)
        volumes = [_shown(m) for m in self.volumes.list() if self._matches(m, filters)]
        return json_response({"Volumes": volumes, "Warnings": []})

    async def create(self, request: web.Request) -> web.Response:
        body = await json_body(request, allow_empty=True) or {}
        if not isinstance(body, dict):
            raise InvalidParameter("the request body must be a JSON object")
        meta = self.volumes.create(body.get("Name") or None, body.get("Driver") or "local", body.get("DriverOpts"),
                                   body.get("Labels"), anonymous=not body.get("Name"))
        self.events.emit("volume", "create", meta["Name"], {"driver": "local"})
        return json_response(_shown(meta), status=201)

    async def inspect(self, request: web.Request) -> web.Response:
        return json_response(_shown(self.volumes.get(request.match_info["name"])))

    async def remove(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.volumes.remove(name, self.containers.volume_users(name), force=boolean(request, "force"))
        self.events.emit("volume", "destroy", name, {"driver": "local"})
        return no_content()

    async def prune(self, request: web.Request) -> web.Response:
        """Unused anonymous volumes (all unused ones with the filter all=true), as API 1.42+."""
        filters = query_filters(request)
        everything = any(v.lower() in ("true", "1") for v in filters.pop("all", []))
        deleted, reclaimed = [], 0
        for meta in self.volumes.list():
            if self.containers.volume_users(meta["Name"]) or not self._matches(meta, filters):
                continue
            if not everything and not meta["Orlop"].get("Anonymous"):
                continue
            reclaimed += _size(meta["Mountpoint"])
            self.volumes.remove(meta["Name"], [])
            deleted.append(meta["Name"])
        return json_response({"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


def _size(path: str) -> int:
    from orlop.fsutil import tree_size

    return tree_size(path)
