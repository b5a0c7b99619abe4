"""`GET /containers/{id}/stats`: one sample, or a stream of one per second, each carrying
the previous one's CPU figures (precpu_stats) as dockerd's do, so that clients can
compute CPU % from the two."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from orlop.api.common import boolean
from orlop.containers import stats
from orlop.containers.service import ContainerService
from orlop.errors import NotFound
from orlop.shim.logs import rfc3339_nano

ZERO_TIME = "0001-01-01T00:00:00Z"
INTERVAL = 1.0


class StatsRoutes:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers

    def register(self, add) -> None:
        add("GET", "/containers/{id}/stats", self.stats)

    def _sample(self, cid: str) -> dict:
        record = self.containers.get(cid)
        state = record["State"]
        body = None
        if state["Running"] and not state["Restarting"]:
            try:
                body = stats.sample(state["Pid"])
            except (OSError, ValueError):
                body = None  # it exited between the check and the read
        if body is None:
            body = stats.empty()
            body["read"] = ZERO_TIME
        else:
            body["read"] = rfc3339_nano(time.time_ns())
        body.update(name=record["Name"], id=record["Id"])
        return body

    async def stats(self, request: web.Request) -> web.StreamResponse:
        cid = self.containers.get(request.match_info["id"])["Id"]
        stream = boolean(request, "stream", default=True)
        one_shot = boolean(request, "one-shot")
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        previous = {"read": ZERO_TIME, "cpu_stats": stats.EMPTY_CPU}
        loop = asyncio.get_running_loop()
        while True:
            try:
                current = await loop.run_in_executor(None, self._sample, cid)
            except NotFound:
                break  # removed while streaming
            current["preread"], current["precpu_stats"] = previous["read"], previous["cpu_stats"]
            if not stream and not one_shot and previous["read"] == ZERO_TIME and current["read"] != ZERO_TIME:
                previous = current  # a single answer still carries a CPU delta, as dockerd's
                await asyncio.sleep(INTERVAL)
                continue
            await response.write(json.dumps(current).encode() + b"\n")
            if not stream:
                break
            previous = current
            await asyncio.sleep(INTERVAL)
        await response.write_eof()
        return response
