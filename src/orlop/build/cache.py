"""The build cache: which image a step produced from a given parent and instruction (and
copied content), kept in one JSON file written atomically. An entry whose image or
snapshot is gone (pruned) is a miss, never an error."""

from __future__ import annotations

import hashlib
import json
import os
import threading

from orlop.fsutil import write_atomic


class BuildCache:
    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        try:
            with open(path) as f:
                self.entries: dict[str, dict] = json.load(f)
        except (FileNotFoundError, ValueError):
            self.entries = {}

    @staticmethod
    def key(parent: str, created_by: str, extra: str) -> str:
        return hashlib.sha256(json.dumps([parent, created_by, extra]).encode()).hexdigest()

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, key: str, value: dict) -> None:
        with self.lock:
            self.entries[key] = value
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            write_atomic(self.path, json.dumps(self.entries).encode())

    def clear(self) -> dict[str, dict]:
        """Forget every entry (`docker builder prune`); the entries forgotten."""
        with self.lock:
            removed, self.entries = self.entries, {}
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            write_atomic(self.path, b"{}")
        return removed
