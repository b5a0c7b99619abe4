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
