"""/containers/* and /exec/*: the container endpoints of the Engine API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time

from aiohttp import web

from orlop.api import streams
from orlop.api.common import boolean, json_body, json_response, matches_filters, no_content, query_filters
from orlop.containers import healthcheck, shim_client
from orlop.containers import logs as container_logs
from orlop.containers.events import Events
from orlop.containers.execs import ExecService
from orlop.containers.logs import entry_time
from orlop.containers.service import ContainerService
from orlop.containers.shim_client import ShimConnection
from orlop.errors import Conflict, InvalidParameter, OrlopError

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, as `docker ps` shows ages."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def status_text(state: dict) -> str:
    if state["Restarting"]:
        return f"Restarting ({state['ExitCode']}) {human_duration(time.time() - entry_time(state['FinishedAt']))} ago"
    if state["Running"]:
        text = f"Up {human_duration(time.time() - entry_time(state['StartedAt']))}"
        return text + " (Paused)" if state["Paused"] else text + healthcheck.status_suffix(state)
    if state["Status"] == "created":
        return "Created"
    if state["Status"] == "removing":
        return "Removal In Progress"
    return f"Exited ({state['ExitCode']}) {human_duration(time.time() - entry_time(state['FinishedAt']))} ago"


def container_summary(record: dict) -> dict:
    """A container as GET /containers/json lists it."""
    state = record["State"]
    return {
        "Id": record["Id"], "Names": [record["Name"]], "Image": record["Config"].get("Image", ""),
        "ImageID": record["Image"],
        # moby: an argument with a space is shown in single quotes
        "Command": " ".join([record["Path"], *(f"'{a}'" if " " in a else a for a in record["Args"])]).strip(),
        "Created": int(entry_time(record["Created"])), "Ports": _ports(record), "Labels": record["Config"].get("Labels") or {},
        "State": state["Status"], "Status": status_text(state),
        "HostConfig": {"NetworkMode": record["HostConfig"].get("NetworkMode", "default")},
        "NetworkSettings": {"Networks": record["NetworkSettings"].get("Networks") or {}},
        "Mounts": record.get("Mounts") or [],
    }


class ContainerRoutes:
    def __init__(self, containers: ContainerService, execs: ExecService, events: Events) -> None:
        self.containers = containers
        self.execs = execs
        self.events = events

    def register(self, add) -> None:
        add("POST", "/containers/create", self.create)
        add("GET", "/containers/json", self.list)
        add("POST", "/containers/prune", self.prune)
        add("GET", "/containers/{id}/json", self.inspect)
        add("POST", "/containers/{id}/start", self.start)
        add("POST", "/containers/{id}/stop", self.stop)
        add("POST", "/containers/{id}/restart", self.restart)
        add("POST", "/containers/{id}/kill", self.kill)
        add("POST", "/containers/{id}/pause", self.pause)
        add("POST", "/containers/{id}/unpause", self.unpause)
        add("POST", "/containers/{id}/rename", self.rename)
        add("POST", "/containers/{id}/update", self.update)
        add("POST", "/containers/{id}/wait", self.wait)
        add("POST", "/containers/{id}/attach", self.attach)
        add("POST", "/containers/{id}/resize", self.resize)
        add("GET", "/containers/{id}/logs", self.logs)
        add("GET", "/containers/{id}/top", self.top)
        add("DELETE", "/containers/{id}", self.remove)
        add("POST", "/containers/{id}/exec", self.exec_create)
        add("POST", "/exec/{id}/start", self.exec_start)
        add("POST", "/exec/{id}/resize", self.exec_resize)
        add("GET", "/exec/{id}/json", self.exec_inspect)

    # -- lifecycle -------------------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        warnings: list[str] = []
        record = await self.containers.create(body, request.query.get("name"), warnings)
        return json_response({"Id": record["Id"], "Warnings": warnings}, status=201)

    async def start(self, request: web.Request) -> web.Response:
        await self.containers.start(request.match_info["id"])
        return no_content()

    async def stop(self, request: web.Request) -> web.Response:
        t = request.query.get("t")
        await self.containers.stop(request.match_info["id"], int(t) if t not in (None, "") else None,
                                   request.query.get("signal"))
        return no_content()

    async def restart(self, request: web.Request) -> web.Response:
        t = request.query.get("t")
        await self.containers.restart(request.match_info["id"], int(t) if t not in (None, "") else None)
        return no_content()

    async def kill(self, request: web.Request) -> web.Response:
        await self.containers.kill(request.match_info["id"], request.query.get("signal"))
        return no_content()

    async def pause(self, request: web.Request) -> web.Response:
        await self.containers.pause(request.match_info["id"])
        return no_content()

    async def unpause(self, request: web.Request) -> web.Response:
        await self.containers.unpause(request.match_info["id"])
        return no_content()

    async def rename(self, request: web.Request) -> web.Response:
        await self.containers.rename(request.match_info["id"], request.query.get("name", ""))
        return no_content()

    async def update(self, request: web.Request) -> web.Response:
        body = await json_body(request, allow_empty=True)
        warnings = await self.containers.update(request.match_info["id"], body, request.match_info.get("api_version"))
        return json_response({"Warnings": warnings})

    async def remove(self, request: web.Request) -> web.Response:
        await self.containers.remove(request.match_info["id"], force=boolean(request, "force"),
                                     volumes=boolean(request, "v"))
        return no_content()

    async def wait(self, request: web.Request) -> web.StreamResponse:
        record = self.containers.get(request.match_info["id"])
        condition = request.query.get("condition") or "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        # Headers now: `docker run` waits for them before it starts the container.
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        result = await self.containers.wait(record["Id"], condition)
        with contextlib.suppress(ConnectionResetError):  # the client stopped waiting
            await response.write(json.dumps(result).encode() + b"\n")
            await response.write_eof()
        return response

    async def prune(self, request: web.Request) -> web.Response:
        removed, reclaimed = [], 0
        filters = query_filters(request)
        for cid, record in list(self.containers.store.records.items()):
            if not record["State"]["Running"] and not record["State"]["Restarting"] and _matches(record, filters):
                size_rw, _ = await asyncio.get_running_loop().run_in_executor(None, self.containers.sizes, record)
                await self.containers.remove(cid)
                removed.append(cid)
                reclaimed += size_rw
        return json_response({"ContainersDeleted": removed or None, "SpaceReclaimed": reclaimed})

    # -- views -----------------------------------------------------------------------------------
    async def inspect(self, request: web.Request) -> web.Response:
        record = self.containers.get(request.match_info["id"])
        shown = {k: v for k, v in record.items() if k != "Orlop"}
        shown["Config"] = {k: v for k, v in record["Config"].items()}
        if boolean(request, "size"):
            loop = asyncio.get_running_loop()
            shown["SizeRw"], shown["SizeRootFs"] = await loop.run_in_executor(None, self.containers.sizes, record)
        return json_response(shown)

    async def list(self, request: web.Request) -> web.Response:
        limit_text = request.query.get("limit", "")
        # A limit takes containers in every state (moby), as `docker ps -n 3` / `-l` expect.
        show_all = boolean(request, "all") or (limit_text.isdigit() and int(limit_text) > 0)
        filters = query_filters(request)
        for value in filters.get("health", []):
            healthcheck.check_filter_value(value)
        for key in ("before", "since"):  # containers named by these are compared by creation time
            if key in filters:
                filters[key] = [str(entry_time(self.containers.get(v)["Created"])) for v in filters[key]]
        records = sorted(self.containers.store.records.values(), key=lambda r: r["Created"], reverse=True)
        out = []
        for record in records:
            state = record["State"]
            if not show_all and not state["Running"] and "status" not in filters:
                continue
            if not _matches(record, filters):
                continue
            out.append(container_summary(record))
            if boolean(request, "size"):
                loop = asyncio.get_running_loop()
                out[-1]["SizeRw"], out[-1]["SizeRootFs"] = await loop.run_in_executor(None, self.containers.sizes,
                                                                                      record)
        limit = request.query.get("limit")
        if limit and not limit.lstrip("-").isdigit():
            raise InvalidParameter(f"invalid limit {limit!r}: a number")
        if limit and int(limit) > 0:
            out = out[:int(limit)]
        return json_response(out)

    async def top(self, request: web.Request) -> web.Response:
        record = self.containers.get(request.match_info["id"])
        if not record["State"]["Running"]:
            raise Conflict(f"Container {record['Id']} is not running")
        pids = set(json.loads(await self.containers.runtime_for(record, "ps", "--format", "json", record["Id"]))
                   or [])
        args = (request.query.get("ps_args") or "-ef").split()
        proc = await asyncio.create_subprocess_exec("ps", *args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise InvalidParameter(f"Error running ps: {err.decode().strip()}")
        lines = out.decode().splitlines()
        titles = lines[0].split()
        pid_col = titles.index("PID") if "PID" in titles else 1
        processes = []
        for line in lines[1:]:
            fields = line.split(None, len(titles) - 1)
            if len(fields) > pid_col and fields[pid_col].isdigit() and int(fields[pid_col]) in pids:
                processes.append(fields)
        return json_response({"Titles": titles, "Processes": processes})

    async def logs(self, request: web.Request) -> web.StreamResponse:
        record = self.containers.get(request.match_info["id"])
        stdout, stderr = boolean(request, "stdout"), boolean(request, "stderr")
        if not stdout and not stderr:
            raise InvalidParameter("Bad parameters: you must choose at least one stream")
        if not record["LogPath"]:
            raise InvalidParameter(f'configured logging driver does not support reading: '
                                   f'{record["HostConfig"]["LogConfig"]["Type"]}')
        tail = request.query.get("tail", "all")
        if tail not in ("all", "") and not tail.isdigit():
            raise InvalidParameter(f"invalid value for tail: {tail!r} (a number or \"all\")")
        tty = record["Config"].get("Tty")
        timestamps = boolean(request, "timestamps")
        since = container_logs.parse_time(request.query.get("since", ""))  # a bad one: a 400, before the stream
        until = container_logs.parse_time(request.query.get("until", ""))
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        cid = record["Id"]
        entries = container_logs.read(
            record["LogPath"], stdout=stdout, stderr=stderr, since=since, until=until,
            tail=None if tail in ("all", "") else int(tail), follow=boolean(request, "follow"),
            running=lambda: cid in self.containers.store.records and self.containers.store.records[cid]["State"][
                "Running"])
        async for stream, stamp, text in entries:
            if timestamps:
                text = _padded_time(stamp).encode() + b" " + text
            kind = 1 if stream == "stdout" else 2
            await response.write(text if tty else streams.protocol.frame(kind, text))
        await response.write_eof()
        return response

    # -- attach / exec ---------------------------------------------------------------------------
    async def attach(self, request: web.Request) -> web.StreamResponse:
        record = self.containers.get(request.match_info["id"])
        cid = record["Id"]
        tty = bool(record["Config"].get("Tty"))
        want_stdin = boolean(request, "stdin")
        detach_keys = streams.parse_detach_keys(request.query.get("detachKeys", ""))
        hijack = await streams.Hijack.start(request, RAW if tty else MULTIPLEXED)
        if boolean(request, "logs") and record["LogPath"]:
            await self._replay_logs(record, hijack, boolean(request, "stdout"), boolean(request, "stderr"))
        if not boolean(request, "stream"):
            await hijack.close()
            return hijack.finished()
        attach_request = {"op": "attach", "stdin": want_stdin, "stdout": boolean(request, "stdout"),
                          "stderr": boolean(request, "stderr"),
                          "stdin_once": bool(record["Config"].get("StdinOnce"))}
        if record["State"]["Running"]:
            shim = await self._attach_running(cid, attach_request)
        else:
            shim = await self._attach_at_start(cid, attach_request, hijack)
            if shim is None:
                await hijack.close()
                return hijack.finished()
        self.events.emit("container", "attach", cid, {"name": record["Name"].lstrip("/"),
                                                      "image": record["Config"].get("Image", "")})
        await streams.join(hijack, shim, tty, want_stdin, detach_keys=detach_keys)
        return hijack.finished()

    @staticmethod
    async def _replay_logs(record: dict, hijack: streams.Hijack, stdout: bool, stderr: bool) -> None:
        """attach?logs=1: what the container wrote so far, before the live stream."""
        if not stdout and not stderr:
            return
        tty = record["Config"].get("Tty")
        async for stream, _, text in container_logs.read(record["LogPath"], stdout=stdout, stderr=stderr,
                                                         since=0.0, until=0.0, tail=None, follow=False,
                                                         running=lambda: False):
            await hijack.write(text if tty else streams.protocol.frame(1 if stream == "stdout" else 2, text))

    async def _attach_running(self, cid: str, attach_request: dict) -> ShimConnection | None:
        try:
            _, shim = await shim_client.request(self.containers.paths.state_dir(cid), attach_request)
        except OrlopError:
            return None  # it exited meanwhile: the stream is simply empty
        return shim

    async def _attach_at_start(self, cid: str, attach_request: dict,
                               hijack: streams.Hijack) -> ShimConnection | None:
        """Wait for the container's start (the service connects us to the shim before the
        process runs) or for the client to go away."""
        future = asyncio.get_running_loop().create_future()
        self.containers.pending_attach.setdefault(cid, []).append((future, attach_request))
        # Only a lost connection cancels: stdin sent before start stays queued for the shim.
        await asyncio.wait({future, hijack.proto.closed}, return_when=asyncio.FIRST_COMPLETED)
        if not future.done():
            future.cancel()
            return None
        try:
            return future.result()
        except OrlopError:
            return None

    async def resize(self, request: web.Request) -> web.Response:
        record = self.containers.get(request.match_info["id"])
        if not record["State"]["Running"]:
            raise Conflict(f"Container {record['Id']} is not running")
        await self._resize(record["Id"], None, request)
        return json_response(None)  # dockerd answers 200

    async def _resize(self, cid: str, exec_id: str | None, request: web.Request) -> None:
        try:
            height, width = int(request.query.get("h", 0)), int(request.query.get("w", 0))
        except ValueError:
            raise InvalidParameter("h and w must be numbers") from None
        await shim_client.call(self.containers.paths.state_dir(cid),
                               {"op": "resize", "exec": exec_id, "height": height, "width": width})

    async def exec_create(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        if isinstance(body, dict):
            body.setdefault("DetachKeys", body.pop("detachKeys", None))  # Go decodes JSON keys case-insensitively
            streams.parse_detach_keys(body.get("DetachKeys") or "")  # a bad value is refused now, as dockerd
        exec_id = self.execs.create(request.match_info["id"], body)
        return json_response({"Id": exec_id}, status=201)

    async def exec_inspect(self, request: web.Request) -> web.Response:
        return json_response(self.execs.inspect(request.match_info["id"]))

    async def exec_resize(self, request: web.Request) -> web.Response:
        record = self.execs.get(request.match_info["id"])
        started = record["Orlop"].get("started")
        if started is not None and not record["Running"]:
            with contextlib.suppress(TimeoutError):  # a client may resize as soon as its stream opened
                await asyncio.wait_for(started.wait(), 5)
        if not record["Running"]:
            raise Conflict(f"Exec {record['ID']} is not running")
        await self._resize(record["ContainerID"], record["ID"], request)
        return json_response(None)

    async def exec_start(self, request: web.Request) -> web.StreamResponse:
        record = self.execs.get(request.match_info["id"])
        body = await json_body(request, allow_empty=True) or {}
        if record["Running"] or record["ExitCode"] is not None:
            raise Conflict(f"Exec {record['ID']} has already been started")
        container = self.containers.get(record["ContainerID"])
        if not container["State"]["Running"]:
            raise Conflict(f"Container {container['Id']} is not running")
        tty = record["ProcessConfig"]["tty"]
        detach = bool(body.get("Detach"))
        detach_keys = streams.parse_detach_keys(record["DetachKeys"])
        try:
            process = self.execs.process_spec(record)
            failure = None if process["cwd"].startswith("/") else \
                "OCI runtime exec failed: exec failed: Cwd must be an absolute path: unknown"
        except InvalidParameter as e:  # no such user: known only now, as dockerd knows it
            process, failure = None, str(e)
        if failure is not None:
            return await self._exec_failed(request, record, failure, 126, tty, detach)
        req = {"op": "exec", "exec": record["ID"], "process": process,
               "stdin": record["OpenStdin"], "stdout": record["OpenStdout"], "stderr": record["OpenStderr"],
               "detach": detach}
        state_dir = self.containers.paths.state_dir(container["Id"])
        if detach:
            answer, shim = await shim_client.request(state_dir, req)
            self.execs.started(record, answer.get("pid", 0))
            shim.close()
            asyncio.create_task(self._exec_wait(container["Id"], record))
            return web.Response(status=200, body=b"", content_type="application/json")
        # The stream's headers go out before the process runs: a client whose HTTP parser
        # reads ahead (docker-py's does) would otherwise swallow the first output.
        # Made before the headers go: a client may ask for a resize as soon as it has read them.
        started = record["Orlop"]["started"] = asyncio.Event()
        try:
            hijack = await streams.Hijack.start(request, RAW if tty else MULTIPLEXED, streams.STANDARD_HEADERS)
        except BaseException:
            started.set()
            raise
        try:
            answer, shim = await shim_client.request(state_dir, req)
        except OrlopError as e:
            started.set()
            code = 127 if "no such file" in str(e).lower() or "not found" in str(e) else 126
            self.execs.exited(record, code, event=False)
            return await _end_with(hijack, f"OCI runtime exec failed: {e}", tty)
        self.execs.started(record, answer.get("pid", 0))
        started.set()
        result = await streams.join(
            hijack, shim, tty, record["OpenStdin"], detach_keys=detach_keys,
            on_exit=lambda r: self.execs.exited(record, r.get("exit_code")),
            fetch_exit=lambda: shim_client.call(state_dir, {"op": "wait", "exec": record["ID"]}))
        if result is None and record["ExitCode"] is None:
            asyncio.create_task(self._exec_wait(container["Id"], record))
        return hijack.finished()

    async def _exec_failed(self, request: web.Request, record: dict, message: str, code: int, tty: bool,
                           detach: bool) -> web.StreamResponse:
        """An exec that cannot start: its stream carries the reason and it ends with `code`
        (what the docker CLI shows and exits with), or a 400 for a detached one."""
        self.execs.exited(record, code, event=False)
        if detach:
            raise InvalidParameter(message)
        hijack = await streams.Hijack.start(request, RAW if tty else MULTIPLEXED, streams.STANDARD_HEADERS)
        return await _end_with(hijack, message, tty)

    async def _exec_wait(self, cid: str, record: dict) -> None:
        try:
            result = await shim_client.call(self.containers.paths.state_dir(cid), {"op": "wait", "exec": record["ID"]})
        except Exception:
            result = {"exit_code": 137}
        self.execs.exited(record, result.get("exit_code"))


def _ports(record: dict) -> list[dict]:
    """NetworkSettings.Ports as `GET /containers/json` lists them (docker ps's PORTS)."""
    out = []
    for port, bindings in (record["NetworkSettings"].get("Ports") or {}).items():
        number, _, proto = port.partition("/")
        if not bindings:
            out.append({"PrivatePort": int(number), "Type": proto or "tcp"})
        for binding in bindings or []:
            out.append({"IP": binding.get("HostIp") or "0.0.0.0", "PrivatePort": int(number),
                        "PublicPort": int(binding["HostPort"]), "Type": proto or "tcp"})
    return out


def _padded_time(stamp: str) -> str:
    """RFC3339 with 9 fractional digits, as `docker logs -t` prints."""
    base, _, rest = stamp.partition(".")
    if not rest:
        return base.rstrip("Z") + ".000000000Z"
    return f"{base}.{rest.rstrip('Z').ljust(9, '0')}Z"


def _regex_match(pattern: str, text: str) -> bool:
    """moby's filters.Match: a regular expression searched in the text; an invalid one matches nothing."""
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


async def _end_with(hijack: streams.Hijack, message: str, tty: bool) -> web.StreamResponse:
    """An exec's stream that ends with why it could not run (on stderr when multiplexed)."""
    text = (message + "\r\n").encode()
    await hijack.write(text if tty else streams.protocol.frame(streams.protocol.STDERR, text))
    await hijack.close()
    return hijack.finished()


def _port_key(value: str) -> str:
    return value if "/" in value else f"{value}/tcp"


def _matches(record: dict, filters: dict[str, list[str]]) -> bool:
    state = record["State"]
    checks = {
        "status": lambda v: state["Status"] == v,
        "name": lambda v: _regex_match(v, record["Name"]) or _regex_match(v, record["Name"].lstrip("/")),
        "id": lambda v: record["Id"].startswith(v),
        "exited": lambda v: not state["Running"] and str(state["ExitCode"]) == v,
        "ancestor": lambda v: record["Config"].get("Image") == v or record["Image"].startswith(v),
        "until": lambda v: entry_time(record["Created"]) < container_logs.parse_time(v),
        "network": lambda v: record["HostConfig"].get("NetworkMode") == v,
        "health": lambda v: healthcheck.status_of(state) == v,
        "before": lambda v: entry_time(record["Created"]) < float(v),
        "since": lambda v: entry_time(record["Created"]) > float(v),
        "expose": lambda v: _port_key(v) in (record["Config"].get("ExposedPorts") or {}),
        "publish": lambda v: any(_port_key(v) == port or any(b.get("HostPort") == v.split("/")[0] for b in bindings)
                                 for port, bindings in (record["HostConfig"].get("PortBindings") or {}).items()),
        "volume": lambda v: any(v in (m.get("Name"), m.get("Source"), m.get("Destination"))
                                for m in record.get("Mounts") or []),
        "is-task": lambda v: v.lower() in ("false", "0"),
        "isolation": lambda v: v in ("default", ""),
    }
    return matches_filters(filters, checks, record["Config"].get("Labels") or {})
