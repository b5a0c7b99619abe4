"""The daemon's event bus: what /events streams (Docker's event JSON), with a short history
for `since` and per-subscriber queues."""

from __future__ import annotations

import asyncio
import time
from collections import deque


class Events:
    def __init__(self, history: int = 1024) -> None:
        self.history: deque[dict] = deque(maxlen=history)
        self.subscribers: set[asyncio.Queue] = set()

    def emit(self, kind: str, action: str, actor_id: str, attributes: dict[str, str] | None = None) -> dict:
        ns = time.time_ns()
        event = {"Type": kind, "Action": action, "Actor": {"ID": actor_id, "Attributes": attributes or {}},
                 "scope": "local", "time": ns // 1_000_000_000, "timeNano": ns}
        if kind == "container":  # the pre-1.22 keys the docker CLI still reads
            event = {"status": action, "id": actor_id, "from": (attributes or {}).get("image", ""), **event}
        self.history.append(event)
        for queue in self.subscribers:
            queue.put_nowait(event)
        return event

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.subscribers.discard(queue)


def matches(event: dict, filters: dict[str, list[str]]) -> bool:
    """Docker's event filters: type, event/action, container, image, label, …"""
    actor = event["Actor"]
    attrs = actor.get("Attributes", {})
    checks = {
        "type": lambda v: event["Type"] == v,
        "event": lambda v: event["Action"] == v or event["Action"].split(":")[0] == v,
        "container": lambda v: event["Type"] == "container" and (actor["ID"].startswith(v) or attrs.get("name") == v),
        "image": lambda v: attrs.get("image") == v or (event["Type"] == "image" and actor["ID"] == v),
        "label": lambda v: (attrs.get(v.split("=", 1)[0]) == v.split("=", 1)[1]) if "=" in v else v in attrs,
    }
    for key, values in filters.items():
        check = checks.get(key)
        if check and not any(check(v) for v in values):
            return False
    return True
