"""The Engine API application: routes (each also under /v1.xx/), the standard headers on
every answer, API version checks, and error kinds mapped to Docker's statuses with a
{"message": …} body (moby's middleware/version.go and httpstatus.FromError)."""

from __future__ import annotations

import logging

from aiohttp import web

from orlop.api.archive import ArchiveRoutes
from orlop.api.build import BuildRoutes
from orlop.api.commit import CommitRoutes
from orlop.api.common import error_response
from orlop.api.containers import ContainerRoutes
from orlop.api.disk_usage import DiskUsageRoutes
from orlop.api.explain import ExplainRoutes
from orlop.api.images import ImageRoutes
from orlop.api.networks import NetworkRoutes
from orlop.api.stats import StatsRoutes
from orlop.api.streams import STANDARD_HEADERS
from orlop.api.system import API_VERSION, MIN_API_VERSION, SystemRoutes
from orlop.api.volumes import VolumeRoutes
from orlop.containers.commit import Committer
from orlop.containers.files import ContainerFiles
from orlop.errors import DISK_FULL, OrlopError, describe_os_error

log = logging.getLogger("orlopd")


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


@web.middleware
async def standard(request: web.Request, handler):
    version = request.match_info.get("api_version")
    if version is not None:
        if _version_tuple(version) > _version_tuple(API_VERSION):
            return _headers(error_response(400, f"client version {version} is too new. Maximum supported API "
                                                f"version is {API_VERSION}"))
        if _version_tuple(version) < _version_tuple(MIN_API_VERSION):
            return _headers(error_response(400, f"client version {version} is too old. Minimum supported API "
                                                f"version is {MIN_API_VERSION}, please upgrade your client to "
                                                f"a newer version"))
    try:
        response = await handler(request)
    except OrlopError as e:
        response = error_response(e.status, str(e))
    except web.HTTPNotFound:
        response = error_response(404, "page not found")
    except web.HTTPMethodNotAllowed:
        response = error_response(405, "method not allowed")
    except (ConnectionResetError, BrokenPipeError):
        raise
    except OSError as e:
        if e.errno not in DISK_FULL:
            log.exception("%s %s", request.method, request.path)
            response = error_response(500, f"{type(e).__name__}: {e}")
        else:  # the data root is full: not a bug, the client is told what could not be written
            log.error("%s %s: %s", request.method, request.path, describe_os_error(e))
            response = error_response(500, describe_os_error(e))
    except Exception as e:  # a bug: say so, in Docker's shape, and keep serving
        log.exception("%s %s", request.method, request.path)
        response = error_response(500, f"{type(e).__name__}: {e}")
    return response


def _headers(response: web.StreamResponse) -> web.StreamResponse:
    for key, value in STANDARD_HEADERS.items():
        response.headers.setdefault(key, value)
    return response


def make_app(services) -> web.Application:
    app = web.Application(middlewares=[standard], client_max_size=0)

    def add(method: str, path: str, handler) -> None:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, "/v{api_version:[0-9]+(?:\\.[0-9]+)?}" + path, handler)

    SystemRoutes(services.containers, services.events, services.started).register(add)
    ContainerRoutes(services.containers, services.execs, services.events).register(add)
    StatsRoutes(services.containers).register(add)
    ArchiveRoutes(ContainerFiles(services.containers)).register(add)
    ExplainRoutes(services.containers, services.images).register(add)
    CommitRoutes(Committer(services.containers)).register(add)
    DiskUsageRoutes(services.containers, services.volumes).register(add)
    BuildRoutes(services.builder, services.events).register(add)
    VolumeRoutes(services.volumes, services.containers, services.events).register(add)
    NetworkRoutes(services.networks, services.containers, services.events).register(add)
    ImageRoutes(services.images, services.events, services.containers.used_images).register(add)
    app.on_response_prepare.append(_on_prepare)
    return app


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    _headers(response)
