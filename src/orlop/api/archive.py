"""A container's files: HEAD/GET/PUT /containers/{id}/archive (`docker cp`),
GET /containers/{id}/export and GET /containers/{id}/changes (`docker diff`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from orlop.api.common import boolean, json_response
from orlop.api.images_io import BodyReader, ResponseWriter
from orlop.containers.archive import stat_header
from orlop.containers.files import ContainerFiles
from orlop.errors import InvalidParameter

STAT_HEADER = "X-Docker-Container-Path-Stat"
log = logging.getLogger("orlopd")


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise InvalidParameter("bad parameter: path cannot be empty (give ?path=/a/path/in/the/container)")
    return path


class ArchiveRoutes:
    def __init__(self, files: ContainerFiles) -> None:
        self.files = files

    def register(self, add) -> None:
        add("HEAD", "/containers/{id}/archive", self.stat)
        add("GET", "/containers/{id}/archive", self.get)
        add("PUT", "/containers/{id}/archive", self.put)
        add("GET", "/containers/{id}/export", self.export)
        add("GET", "/containers/{id}/changes", self.changes)

    async def stat(self, request: web.Request) -> web.Response:
        found = await self.files.stat(request.match_info["id"], _path(request))
        return web.Response(status=200, headers={STAT_HEADER: stat_header(found)})

    async def get(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/x-tar"})

        async def start(found: dict) -> ResponseWriter:
            response.headers[STAT_HEADER] = stat_header(found)
            await response.prepare(request)
            return ResponseWriter(response, asyncio.get_running_loop())

        return await _streamed(request, response, self.files.archive(request.match_info["id"], _path(request), start))

    async def put(self, request: web.Request) -> web.Response:
        body = BodyReader(request.content, asyncio.get_running_loop())
        try:
            await self.files.extract(request.match_info["id"], _path(request), body,
                                     no_overwrite_dir_non_dir=boolean(request, "noOverwriteDirNonDir"),
                                     copy_uid_gid=boolean(request, "copyUIDGID"))
        except BaseException:
            # Refused (no such directory, read-only…) before the archive was read: it is read
            # to its end (up to a bound) so that the client's writer is not cut off mid-stream
            # (the docker CLI would print "read/write on closed pipe" besides our answer).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(_discard(request.content, 256 << 20), 30)
            raise
        return web.Response(status=200)

    async def export(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/x-tar"})

        async def start() -> ResponseWriter:
            await response.prepare(request)
            return ResponseWriter(response, asyncio.get_running_loop())

        return await _streamed(request, response, self.files.export(request.match_info["id"], start))

    async def changes(self, request: web.Request) -> web.Response:
        found = await self.files.changes(request.match_info["id"])
        return json_response(found or None)


async def _streamed(request: web.Request, response: web.StreamResponse, work) -> web.StreamResponse:
    """Await `work`, which prepares `response` and streams into it. An error before the
    answer started is answered as usual; after, the stream can only be cut short (the
    connection is closed, so the client sees a truncated chunked body, not a whole one)."""
    try:
        await work
    except Exception as e:
        if not response.prepared:
            raise
        log.warning("%s %s: the stream was cut short: %s", request.method, request.path, e)
        if request.transport is not None:
            request.transport.close()
        return response
    with contextlib.suppress(ConnectionResetError):  # the client had all it wanted
        await response.write_eof()
    return response


async def _discard(stream, limit: int) -> None:
    read = 0
    while read < limit and (chunk := await stream.readany()):
        read += len(chunk)
