"""Error kinds shared by the services (containerd's errdefs, moby's errdefs): a service
raises a kind with a message for the user; the API maps the kind to Docker's status."""

from __future__ import annotations


class OrlopError(Exception):
    status = 500


class InvalidParameter(OrlopError, ValueError):
    status = 400


class NotFound(OrlopError, LookupError):
    status = 404


class Conflict(OrlopError):
    status = 409


class NotModified(OrlopError):
    status = 304


class Unauthorized(OrlopError):
    status = 401


class Unavailable(OrlopError):
    status = 503


class Forbidden(OrlopError):
    status = 403


DISK_FULL = (28, 122)  # ENOSPC, EDQUOT


def describe_os_error(error: OSError) -> str:
    """An error of the daemon's own storage as Go's (and dockerd's) read, naming what was
    being written: "write /var/lib/orlop/images/images.json: no space left on device"."""
    if error.errno in DISK_FULL:
        reason = "no space left on device" if error.errno == 28 else "disk quota exceeded"
        return f"write {error.filename}: {reason}" if error.filename else reason
    if error.filename:
        return f"{error.filename}: {error.strerror or error}"
    return error.strerror or str(error)
