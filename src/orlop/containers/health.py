"""Health checks run by the daemon, as dockerd runs them (moby daemon/health.go): one
monitor task per running, unpaused container whose HEALTHCHECK has a command; each probe
is an exec in the container (no stdin, stdout and stderr together, the first 4096 bytes
kept) killed when it outlasts its timeout; its result goes into State.Health (the last
five in Log) and a change of status is a `health_status: <status>` event.

The container service calls: `init` when the container has started (or was found running
by a restarted daemon): status "starting", streak 0, the Log kept; `update` after pause
and unpause; `stop` when it exits; `forget` when it is removed. A monitor that stops
leaves the status "unhealthy", as dockerd's does. The record is written to disk when the
status or the failing streak changes (dockerd keeps the rest in memory only, too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from typing import TYPE_CHECKING

from orlop.containers import healthcheck, shim_client
from orlop.containers.healthcheck import SECOND, STARTING, UNHEALTHY
from orlop.containers.logs import entry_time
from orlop.errors import OrlopError
from orlop.shim import protocol
from orlop.shim.logs import rfc3339_nano

if TYPE_CHECKING:
    from orlop.containers.execs import ExecService
    from orlop.containers.service import ContainerService

log = logging.getLogger(__name__)

START_TIMEOUT = 30  # seconds an exec may take to start (not counted in the probe's timeout)
KILLED_WAIT = 10  # seconds to wait for a probe that was killed to be reported ended


class HealthMonitor:
    def __init__(self, containers: ContainerService, execs: ExecService) -> None:
        self.containers = containers
        self.execs = execs
        self.tasks: dict[str, asyncio.Task] = {}

    # -- the service's hooks ---------------------------------------------------------------------
    def init(self, record: dict) -> None:
        """The container has started: health "starting", no failures, probes from now on."""
        if not healthcheck.enabled(record["Config"].get("Healthcheck")):
            return
        self.forget(record["Id"])
        health = record["State"].get("Health") or {"Log": []}
        health.update(Status=STARTING, FailingStreak=0)
        record["State"]["Health"] = health
        self.update(record)

    def update(self, record: dict) -> None:
        """Probes run while the container runs unpaused; otherwise the monitor stops."""
        if not record["State"].get("Health"):
            return
        state = record["State"]
        if state["Running"] and not state["Paused"] and healthcheck.enabled(record["Config"].get("Healthcheck")):
            if record["Id"] not in self.tasks:
                self.tasks[record["Id"]] = asyncio.create_task(self._monitor(record["Id"]))
        else:
            self.stop(record)

    def stop(self, record: dict) -> None:
        """The monitor stops (exit, pause): the status turns "unhealthy", as dockerd's."""
        if self.forget(record["Id"]) and record["State"].get("Health"):
            record["State"]["Health"]["Status"] = UNHEALTHY

    def forget(self, cid: str) -> bool:
        task = self.tasks.pop(cid, None)
        if task is None:
            return False
        task.cancel()
        return True

    # -- the monitor -----------------------------------------------------------------------------
    async def _monitor(self, cid: str) -> None:
        try:
            while True:
                record = self.containers.store.records.get(cid)
                if record is None:
                    return
                config = record["Config"]["Healthcheck"]
                started = int(entry_time(record["State"]["StartedAt"]) * SECOND)
                status = record["State"]["Health"]["Status"]
                await asyncio.sleep(healthcheck.next_interval(config, status, time.time_ns() - started) / SECOND)
                start = time.time_ns()
                result = await self._probe(record, config, start)
                if self.tasks.get(cid) is not asyncio.current_task() or self.containers.store.records.get(cid) \
                        is not record:
                    return  # stopped or removed meanwhile: the result is not wanted
                self._record(record, config, result, start - started)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("health monitor of container %s failed", cid)
            if self.tasks.get(cid) is asyncio.current_task():
                del self.tasks[cid]

    def _record(self, record: dict, config: dict, result: dict, since_start: int) -> None:
        health = record["State"]["Health"]
        before = health.get("FailingStreak", 0)
        changed = healthcheck.record_result(health, result, config, since_start)
        if changed or health["FailingStreak"] != before:
            with contextlib.suppress(OSError):
                self.containers.store.save(record)
        if changed:
            self.containers._event(record, f"health_status: {health['Status']}")

    async def _probe(self, record: dict, config: dict, start: int) -> dict:
        """Run the probe once: {Start, End, ExitCode, Output}; ExitCode -1 when it could not
        be run or outlasted its timeout."""
        cid = record["Id"]

        def result(code: int, output: str) -> dict:
            return {"Start": rfc3339_nano(start), "End": rfc3339_nano(time.time_ns()), "ExitCode": code,
                    "Output": output}

        argv = healthcheck.probe_argv(config, record["Config"].get("Shell"))
        if not argv:
            return result(-1, f"healthcheck for container {cid} has no command")
        try:
            exec_id = self.execs.create(cid, {"Cmd": argv, "AttachStdout": True, "AttachStderr": True})
            exec_record = self.execs.get(exec_id)
            request = {"op": "exec", "exec": exec_id, "process": self.execs.process_spec(exec_record),
                       "stdin": False, "stdout": True, "stderr": True}
        except (OrlopError, OSError, ValueError) as e:
            return result(-1, str(e))
        state_dir = self.containers.paths.state_dir(cid)
        self.execs.started(exec_record, 0)
        try:
            answer, conn = await asyncio.wait_for(shim_client.request(state_dir, request), START_TIMEOUT)
        except asyncio.CancelledError:
            asyncio.get_running_loop().create_task(self._wait_exit(state_dir, exec_record))
            raise
        except TimeoutError:
            self.execs.exited(exec_record, -1, event=False)
            return result(-1, f"timed out starting health check for container {cid}")
        except (OrlopError, OSError, ValueError) as e:
            self.execs.exited(exec_record, 126, event=False)
            return result(-1, f"OCI runtime exec failed: {e}")
        exec_record["Pid"] = answer.get("pid", 0)
        output = healthcheck.OutputBuffer()
        timeout = healthcheck.setting(config, "Timeout")
        finished = False
        try:
            try:
                code = await asyncio.wait_for(self._read(conn, output, state_dir, exec_record), timeout / SECOND)
                finished = True
                return result(code, output.text())
            except TimeoutError:
                await self._kill(state_dir, exec_record)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._read(conn, output, state_dir, exec_record), KILLED_WAIT)
                    finished = True
                text = output.text()
                message = f"Health check exceeded timeout ({healthcheck.go_duration(timeout)})"
                return result(-1, f"{message}: {text}" if text else message)
        finally:
            conn.close()
            if not finished:  # cancelled (the container stops or pauses) or never reported
                asyncio.get_running_loop().create_task(self._wait_exit(state_dir, exec_record))

    async def _read(self, conn: shim_client.ShimConnection, output: healthcheck.OutputBuffer, state_dir: str,
                    exec_record: dict) -> int:
        """The probe's output until its exit frame; its exit code."""
        while True:
            frame = await conn.read_frame()
            if frame is None:
                return await self._wait_exit(state_dir, exec_record)
            kind, payload = frame
            if kind == protocol.EXIT:
                code = json.loads(payload).get("exit_code", -1)
                self.execs.exited(exec_record, code)
                return code
            output.write(payload)

    async def _wait_exit(self, state_dir: str, exec_record: dict) -> int:
        try:
            answer = await shim_client.call(state_dir, {"op": "wait", "exec": exec_record["ID"]})
            code = answer.get("exit_code", -1)
        except (OrlopError, OSError, ValueError):
            code = 137  # the container (and with it the probe) is gone
        self.execs.exited(exec_record, code)
        return code

    @staticmethod
    async def _kill(state_dir: str, exec_record: dict) -> None:
        try:
            await shim_client.call(state_dir, {"op": "kill", "exec": exec_record["ID"], "signal": int(signal.SIGKILL)})
        except shim_client.ShimGone:
            pass
        except OrlopError as e:
            if "unknown request" in str(e) and exec_record.get("Pid"):  # a shim older than the kill request
                with contextlib.suppress(OSError):
                    os.kill(exec_record["Pid"], signal.SIGKILL)
