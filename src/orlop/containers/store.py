"""Containers' records, one JSON file each (data-root/containers/<id>/config.v2.json, as
dockerd keeps them), written atomically so that a crash never loses or half-writes one.

A record is the container in the shape of `docker inspect` (Id, Name, Config,
HostConfig, State, …) plus orlop's own keys under "Orlop" (the image reference as
given, the snapshot key, the runtime's path); inspect is that record minus "Orlop".
"""

from __future__ import annotations

import json
import os
import shutil

from orlop.errors import Conflict, InvalidParameter, NotFound
from orlop.fsutil import write_atomic

ZERO_TIME = "0001-01-01T00:00:00Z"
RECORD = "config.v2.json"


def empty_state() -> dict:
    return {"Status": "created", "Running": False, "Paused": False, "Restarting": False, "OOMKilled": False,
            "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "", "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME}


class ContainerStore:
    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, 0o700, exist_ok=True)
        self.records: dict[str, dict] = {}
        for cid in os.listdir(root):
            path = os.path.join(root, cid, RECORD)
            try:
                with open(path) as f:
                    self.records[cid] = json.load(f)
            except (OSError, ValueError):
                # A container whose creation crashed before its record was written: nothing to keep
                # (its rootfs cannot be mounted then, but never delete through a mount).
                if not os.path.ismount(os.path.join(root, cid, "rootfs")):
                    shutil.rmtree(os.path.join(root, cid), ignore_errors=True)

    def dir(self, cid: str) -> str:
        return os.path.join(self.root, cid)

    def save(self, record: dict) -> None:
        os.makedirs(self.dir(record["Id"]), 0o700, exist_ok=True)
        write_atomic(os.path.join(self.dir(record["Id"]), RECORD), json.dumps(record).encode())
        self.records[record["Id"]] = record

    def delete(self, cid: str) -> None:
        """The record first: a crash in the middle leaves a directory without one, which the
        next start removes, never a record whose log or /etc files are half gone."""
        self.records.pop(cid, None)
        try:
            os.unlink(os.path.join(self.dir(cid), RECORD))
        except FileNotFoundError:
            pass
        shutil.rmtree(self.dir(cid), ignore_errors=True)

    def names(self) -> set[str]:
        return {r["Name"].lstrip("/") for r in self.records.values()}

    def get(self, ref: str) -> dict:
        """By full ID, name (with or without the leading /), or unique ID prefix, as Docker resolves."""
        if not ref:
            raise InvalidParameter("container name or ID must not be empty")
        if ref in self.records:
            return self.records[ref]
        name = "/" + ref.lstrip("/")
        for record in self.records.values():
            if record["Name"] == name:
                return record
        matches = [r for cid, r in self.records.items() if cid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def check_name_free(self, name: str) -> None:
        for record in self.records.values():
            if record["Name"] == "/" + name:
                raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                               f'"{record["Id"]}". You have to remove (or rename) that container to be able '
                               f"to reuse that name.")
