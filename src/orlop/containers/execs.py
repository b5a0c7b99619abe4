"""`exec`: extra processes in a running container, run by its shim. Records live in the
daemon's memory, as dockerd keeps them; the exit code is stored before the stream that
reports it is closed, so `exec` clients that inspect right after the stream see it. An
ended exec leaves the container's ExecIDs at once and the daemon's memory after
RETAIN_SECONDS (dockerd's exec GC). Events: exec_create, exec_start, exec_die."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections import deque

from orlop.containers import spec
from orlop.containers.service import ContainerService
from orlop.errors import Conflict, InvalidParameter, NotFound

RETAIN_SECONDS = 300


class ExecService:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self.execs: dict[str, dict] = {}
        self.ended: deque[tuple[float, str]] = deque()  # (when, exec ID), oldest first

    def create(self, ref: str, body: dict) -> str:
        record = self.containers.get(ref)
        if not record["State"]["Running"]:
            raise Conflict(f"Container {record['Id']} is not running")
        if record["State"]["Paused"]:
            raise Conflict(f"Container {record['Id']} is paused, unpause the container before exec")
        cmd = body.get("Cmd")
        if not cmd or not isinstance(cmd, list):
            raise InvalidParameter("No exec command specified")
        exec_id = secrets.token_hex(32)
        self.execs[exec_id] = {
            "ID": exec_id, "Running": False, "ExitCode": None, "Pid": 0, "CanRemove": False,
            "ContainerID": record["Id"], "DetachKeys": body.get("DetachKeys") or "",
            "OpenStdin": bool(body.get("AttachStdin")), "OpenStdout": bool(body.get("AttachStdout")),
            "OpenStderr": bool(body.get("AttachStderr")),
            "ProcessConfig": {"tty": bool(body.get("Tty")), "entrypoint": cmd[0], "arguments": cmd[1:],
                              "privileged": bool(body.get("Privileged")), "user": body.get("User") or ""},
            "Orlop": {"Env": body.get("Env") or [], "WorkingDir": body.get("WorkingDir") or "",
                      "ConsoleSize": body.get("ConsoleSize")},
        }
        record["ExecIDs"] = [*(record.get("ExecIDs") or []), exec_id]
        self._forget_old()
        self.containers._event(record, f"exec_create: {describe(self.execs[exec_id])}", execID=exec_id)
        return exec_id

    def started(self, exec_record: dict, pid: int) -> None:
        exec_record.update(Running=True, Pid=pid)
        container = self.containers.store.records.get(exec_record["ContainerID"])
        if container is not None:
            self.containers._event(container, f"exec_start: {describe(exec_record)}", execID=exec_record["ID"])

    def exited(self, exec_record: dict, exit_code: int | None, event: bool = True) -> None:
        """Record an exec's end (once): its exit code, out of the container's ExecIDs, and
        exec_die, unless it never ran (`event` False: a failed start)."""
        if exec_record["Orlop"].get("ended"):
            return
        exec_record["Orlop"]["ended"] = True
        exec_record.update(Running=False, ExitCode=exit_code, Pid=0)
        self.ended.append((time.monotonic(), exec_record["ID"]))
        container = self.containers.store.records.get(exec_record["ContainerID"])
        if container is None:
            return
        ids = [i for i in container.get("ExecIDs") or [] if i != exec_record["ID"]]
        container["ExecIDs"] = ids or None
        if event:
            self.containers._event(container, "exec_die", execID=exec_record["ID"], exitCode=str(exit_code))

    def _forget_old(self) -> None:
        deadline = time.monotonic() - RETAIN_SECONDS
        while self.ended and self.ended[0][0] < deadline:
            self.execs.pop(self.ended.popleft()[1], None)

    def get(self, exec_id: str) -> dict:
        found = self.execs.get(exec_id)
        if found is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return found

    def inspect(self, exec_id: str) -> dict:
        return {k: v for k, v in self.get(exec_id).items() if k != "Orlop"}

    def process_spec(self, exec_record: dict) -> dict:
        """The container's process (caps, rlimits, env…) with the exec's command, env, user, cwd."""
        cid = exec_record["ContainerID"]
        with open(os.path.join(self.containers.paths.state_dir(cid), "config.json")) as f:
            bundle = json.load(f)
        process = dict(bundle["process"])
        pc = exec_record["ProcessConfig"]
        process["args"] = [pc["entrypoint"], *pc["arguments"]]
        process["terminal"] = pc["tty"]
        process["env"] = spec.process_env(process.get("env") or [], exec_record["Orlop"]["Env"], {})
        if pc["tty"] and not any(e.startswith("TERM=") for e in process["env"]):
            process["env"].append("TERM=xterm")
        if exec_record["Orlop"]["WorkingDir"]:
            process["cwd"] = exec_record["Orlop"]["WorkingDir"]
        if pc["user"]:
            process["user"] = spec.resolve_user(bundle["root"]["path"], pc["user"])
        if pc["privileged"]:
            caps = spec.host_capabilities()
            process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
        process.pop("consoleSize", None)
        size = spec.console_size(exec_record["Orlop"].get("ConsoleSize")) if pc["tty"] else None
        if size:
            process["consoleSize"] = size
        return process


def describe(exec_record: dict) -> str:
    """The command as dockerd's events name it: entrypoint, a space, the arguments."""
    pc = exec_record["ProcessConfig"]
    return pc["entrypoint"] + " " + " ".join(pc["arguments"])
