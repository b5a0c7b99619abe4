"""`POST /build`: the classic builder behind the Engine API. The context tar is spooled to
disk, the build streams dockerd's messages ({"stream": …}, {"aux": {"ID": …}}, errors as
{"errorDetail": …}) as JSON lines, as the docker CLI and docker-py render them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import tempfile

from aiohttp import web

from orlop.api.common import boolean, json_response
from orlop.api.streams import JsonLines
from orlop.build.builder import Builder, BuildError, Options
from orlop.errors import DISK_FULL, InvalidParameter, OrlopError, describe_os_error

log = logging.getLogger("orlopd")


def _json_param(request: web.Request, name: str) -> dict:
    raw = request.query.get(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidParameter(f"invalid {name}: {raw!r} is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidParameter(f"invalid {name}: a JSON object is expected")
    return {k: v for k, v in value.items() if v is not None}


def _registry_config(request: web.Request) -> dict:
    raw = request.headers.get("X-Registry-Config")
    if not raw:
        return {}
    try:
        return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except ValueError:
        raise InvalidParameter("invalid X-Registry-Config header: base64 JSON expected") from None


class BuildRoutes:
    def __init__(self, builder: Builder, events) -> None:
        self.builder = builder
        self.events = events

    def register(self, add) -> None:
        add("POST", "/build", self.build)
        add("POST", "/build/prune", self.prune)

    async def prune(self, request: web.Request) -> web.Response:
        """`docker builder prune` (and `system prune`): the classic builder's step cache is
        forgotten, and the intermediate configs and layers only it kept are freed. The
        next build runs every step again."""
        from orlop.images import manage

        images = self.builder.images
        removed = self.builder.cache.clear()
        blobs = {e["config"] for e in removed.values()} | {layer["digest"] for e in removed.values()
                                                            for layer in e.get("layers") or []}
        chains = {e["chain"] for e in removed.values() if e.get("chain")}
        freed = await asyncio.to_thread(manage.release, images.images, images.content, images.snapshotter,
                                        blobs, chains)
        return json_response({"CachesDeleted": sorted(removed) or None, "SpaceReclaimed": freed})

    async def build(self, request: web.Request) -> web.StreamResponse:
        options = Options(tags=request.query.getall("t", []), dockerfile_name=request.query.get("dockerfile"),
                          build_args=_json_param(request, "buildargs"), no_cache=boolean(request, "nocache"),
                          pull=boolean(request, "pull"), labels=_json_param(request, "labels"),
                          target=request.query.get("target") or None, quiet=boolean(request, "q"),
                          credentials=_registry_config(request))
        os.makedirs(self.builder.work_dir, exist_ok=True)
        spool = tempfile.NamedTemporaryFile(dir=self.builder.work_dir, prefix="context-", suffix=".tar")
        stream = JsonLines(request)
        try:
            try:
                while chunk := await request.content.read(1 << 20):
                    spool.write(chunk)
                spool.flush()
            except OSError as e:  # (a full disk): the error names the context's file
                raise OSError(e.errno, e.strerror, spool.name) from None
            queue: asyncio.Queue = asyncio.Queue()
            task = asyncio.create_task(self.builder.build(spool.name, options, queue.put_nowait))
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    await self._send(stream, getter.result(), options)
                    continue
                getter.cancel()
                while not queue.empty():
                    await self._send(stream, queue.get_nowait(), options)
                break
            try:
                image_id = task.result()
            except BuildError as e:
                code = _exit_code(str(e))
                await stream.error(str(e), code)
                return stream.response
            except (OrlopError, OSError, ValueError) as e:
                await stream.error(describe_os_error(e) if isinstance(e, OSError) and e.errno in DISK_FULL
                                   else str(e))
                return stream.response
            except Exception as e:  # a bug: the client still gets a well-formed error
                log.exception("build failed")
                await stream.error(f"{type(e).__name__}: {e}")
                return stream.response
            for tag in options.tags:
                self.events.emit("image", "tag", image_id, {"name": tag})
            await stream.start()
            await stream.response.write_eof()
            return stream.response
        finally:
            with contextlib.suppress(OSError):  # (what a full disk kept it from flushing)
                spool.close()

    @staticmethod
    async def _send(stream: JsonLines, message: dict, options: Options) -> None:
        if options.quiet and "stream" in message and not message.pop("quiet", False):
            return
        message.pop("quiet", None)
        await stream.send(message)


def _exit_code(message: str) -> int | None:
    marker = "returned a non-zero code: "
    if marker in message:
        tail = message.split(marker, 1)[1].split()[0]
        return int(tail) if tail.isdigit() else None
    return None
