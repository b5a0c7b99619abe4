"""The error a command raises to stop with a message and an exit status."""

from __future__ import annotations


class CommandError(Exception):
    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status
