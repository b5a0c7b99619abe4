"""A small registry for the behaviours Debian's docker-registry cannot be made to show:
Docker Hub's Bearer token flow (a token server checking realm/service/scope, short
token lifetimes) and connections that break in the middle of a blob (for resume).
It serves one image from memory, on 127.0.0.1, in a background thread."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading

from aiohttp import web

SERVICE = "fake-registry"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry:
    def __init__(self, repo: str, layers: list[bytes], config: dict, *, token_lifetime: int = 60,
                 break_after: int | None = None, stall_after: int | None = None) -> None:
        self.repo = repo
        self.blobs = {_digest(data): data for data in layers}
        config_bytes = json.dumps(config).encode()
        self.blobs[_digest(config_bytes)] = config_bytes
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": _digest(config_bytes), "size": len(config_bytes)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(d),
                                "size": len(d)} for d in layers]}
        self.manifest = json.dumps(manifest).encode()
        self.token_lifetime = token_lifetime
        self.break_after = break_after  # bytes of a blob sent before the first response breaks
        self.stall_after = stall_after  # bytes of a blob sent before its response hangs until release()
        self.stalled = threading.Event()
        self._release: asyncio.Event | None = None
        self.tokens_issued: list[str] = []  # scopes
        self.range_requests: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self._thread.start()
        started.wait(10)
        self.host = f"127.0.0.1:{self.port}"

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_get("/token", self._token)
        app.router.add_route("*", "/v2/", self._ping)
        app.router.add_route("*", "/v2/{repo:.+}/manifests/{ref}", self._manifest)
        app.router.add_route("*", "/v2/{repo:.+}/blobs/{digest}", self._blob)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        started.set()
        self._loop.run_forever()

    def release(self) -> None:
        """Let stalled blob responses go on; later ones are not stalled."""
        self.stall_after = None
        self._loop.call_soon_threadsafe(self._release.set)

    def stop(self) -> None:
        self.release()
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _challenge(self, scope: str) -> web.Response:
        header = f'Bearer realm="http://{self.host}/token",service="{SERVICE}"' + (f',scope="{scope}"' if scope else "")
        return web.json_response({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                                 status=401, headers={"WWW-Authenticate": header})

    def _authorised(self, request: web.Request, scope: str) -> bool:
        auth = request.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth[7:] == f"token-for:{scope}"

    async def _token(self, request: web.Request) -> web.Response:
        if request.query.get("service") != SERVICE:
            return web.json_response({"details": "wrong service"}, status=400)
        scope = request.query.get("scope", "")
        self.tokens_issued.append(scope)
        return web.json_response({"token": f"token-for:{scope}", "expires_in": self.token_lifetime})

    async def _ping(self, request: web.Request) -> web.Response:
        if not self._authorised(request, ""):
            return self._challenge("")
        return web.json_response({})

    async def _manifest(self, request: web.Request) -> web.Response:
        scope = f"repository:{request.match_info['repo']}:pull"
        if not self._authorised(request, scope):
            return self._challenge(scope)
        if request.match_info["repo"] != self.repo:
            return web.json_response({"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known"}]},
                                     status=404)
        return web.Response(body=self.manifest, content_type="application/vnd.oci.image.manifest.v1+json")

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        scope = f"repository:{request.match_info['repo']}:pull"
        if not self._authorised(request, scope):
            return self._challenge(scope)
        data = self.blobs.get(request.match_info["digest"])
        if data is None:
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]}, status=404)
        start = 0
        if "Range" in request.headers:
            self.range_requests.append(request.headers["Range"])
            start = int(request.headers["Range"].removeprefix("bytes=").split("-")[0])
        response = web.StreamResponse(status=206 if start else 200)
        response.content_length = len(data) - start
        await response.prepare(request)
        if self.break_after is not None and start == 0 and len(data) > self.break_after:
            await response.write(data[:self.break_after])
            self.break_after = None
            request.transport.close()  # the connection breaks mid-blob
            return response
        if self.stall_after is not None and len(data) - start > self.stall_after:
            await response.write(data[start:start + self.stall_after])
            self.stalled.set()
            await self._release.wait()
        await response.write(data[start:])
        return response
