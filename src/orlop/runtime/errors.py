"""Errors of the runtime, each worded like runc's so that engines that parse
runc's messages (containerd, podman) recognise ours."""

from __future__ import annotations


class RuntimeFailure(Exception):
    """Any failure the CLI reports as `orlop-runtime: <message>` with exit status 1."""


class ContainerNotFound(RuntimeFailure):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container does not exist: {container_id}")


class ContainerExists(RuntimeFailure):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container with id exists: {container_id}")


class InvalidState(RuntimeFailure):
    """An operation the container's current status does not allow."""
