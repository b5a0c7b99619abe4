"""The Engine API's network endpoints: list, inspect, create, remove, connect, disconnect,
prune (`docker network …`)."""

from __future__ import annotations

from aiohttp import web

from orlop.api.common import json_body, json_response, matches_filters, no_content, query_filters
from orlop.containers.events import Events
from orlop.containers.service import ContainerService
from orlop.errors import InvalidParameter
from orlop.network.service import PREDEFINED, NetworkService


def _matches(net: dict, filters: dict[str, list[str]]) -> bool:
    checks = {
        "name": lambda v: v in net["Name"],
        "id": lambda v: net["Id"].startswith(v),
        "driver": lambda v: net["Driver"] == v,
        "type": lambda v: (net["Name"] in PREDEFINED) == (v == "builtin"),
        "scope": lambda v: v == "local",
    }
    return matches_filters(filters, checks, net["Labels"] or {})


class NetworkRoutes:
    def __init__(self, networks: NetworkService, containers: ContainerService, events: Events) -> None:
        self.networks = networks
        self.containers = containers
        self.events = events

    def register(self, add) -> None:
        add("GET", "/networks", self.list)
        add("POST", "/networks/create", self.create)
        add("POST", "/networks/prune", self.prune)
        add("GET", "/networks/{id}", self.inspect)
        add("DELETE", "/networks/{id}", self.remove)
        add("POST", "/networks/{id}/connect", self.connect)
        add("POST", "/networks/{id}/disconnect", self.disconnect)

    def _event(self, net: dict, action: str, **attrs: str) -> None:
        self.events.emit("network", action, net["Id"], {"name": net["Name"], "type": net["Driver"], **attrs})

    async def list(self, request: web.Request) -> web.Response:
        filters = query_filters(request)
        out = [self.networks.inspect(n["Id"]) for n in self.networks.networks.values() if _matches(n, filters)]
        return json_response(sorted(out, key=lambda n: n["Name"]))

    async def inspect(self, request: web.Request) -> web.Response:
        return json_response(self.networks.inspect(request.match_info["id"]))

    async def create(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise InvalidParameter("the request body must be a JSON object")
        net = await self.networks.create(body)
        self._event(net, "create")
        return json_response({"Id": net["Id"], "Warning": ""}, status=201)

    async def remove(self, request: web.Request) -> web.Response:
        net = self.networks.get(request.match_info["id"])
        await self.networks.remove(net["Id"])
        self._event(net, "destroy")
        return no_content()

    async def prune(self, request: web.Request) -> web.Response:
        filters = query_filters(request)
        deleted = []
        for net in list(self.networks.networks.values()):
            if net["Name"] in PREDEFINED or self.networks.endpoints(net["Id"]) or self._users(net):
                continue
            if not _matches(net, {k: v for k, v in filters.items() if k != "until"}):
                continue
            await self.networks.remove(net["Id"])
            self._event(net, "destroy")
            deleted.append(net["Name"])
        return json_response({"NetworksDeleted": deleted or None})

    def _users(self, net: dict) -> list[str]:
        """Containers (running or not) configured on the network."""
        return [r["Id"] for r in self.containers.store.records.values()
                if any(ep.get("NetworkID") == net["Id"] for ep in (r["NetworkSettings"].get("Networks") or {}).values())]

    async def connect(self, request: web.Request) -> web.Response:
        net = self.networks.get(request.match_info["id"])
        body = await json_body(request)
        record = self.containers.get(str((body or {}).get("Container") or ""))
        async with self.containers.lock(record["Id"]):
            await self.networks.connect_container(record, net["Id"], body.get("EndpointConfig"))
            self.containers.store.save(record)
        self._event(net, "connect", container=record["Id"])
        return json_response(None)

    async def disconnect(self, request: web.Request) -> web.Response:
        net = self.networks.get(request.match_info["id"])
        body = await json_body(request)
        record = self.containers.get(str((body or {}).get("Container") or ""))
        async with self.containers.lock(record["Id"]):
            await self.networks.disconnect_container(record, net["Id"], bool(body.get("Force")))
            self.containers.store.save(record)
        self._event(net, "disconnect", container=record["Id"])
        return json_response(None)
