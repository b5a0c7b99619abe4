"""GET /containers/{id}/explain and GET /images/{name}/explain: orlop's own endpoints (not
part of Docker's API), answered from /proc, the cgroup files and the stores; the readers
run off the event loop (one of them enters the container's network namespace)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from orlop.api.common import json_response
from orlop.containers import explain
from orlop.containers.service import ContainerService
from orlop.images.service import ImageService


class ExplainRoutes:
    def __init__(self, containers: ContainerService, images: ImageService) -> None:
        self.containers = containers
        self.images = images

    def register(self, add) -> None:
        add("GET", "/containers/{id}/explain", self.container)
        add("GET", "/images/{name:.+}/explain", self.image)

    async def container(self, request: web.Request) -> web.Response:
        self.containers.get(request.match_info["id"])  # 404 before any work
        return json_response(await asyncio.to_thread(explain.explain_container, self.containers, request.match_info["id"]))

    async def image(self, request: web.Request) -> web.Response:
        return json_response(await asyncio.to_thread(explain.explain_image, self.images, request.match_info["name"]))
