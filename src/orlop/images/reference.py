"""Image references, parsed and normalised as Docker does (distribution/reference).

    busybox                      -> docker.io/library/busybox:latest
    user/app:1                   -> docker.io/user/app:1
    localhost:5000/app@sha256:…  -> localhost:5000/app@sha256:…
The first path component is a registry host when it contains "." or ":" or is
"localhost"; otherwise the image is on Docker Hub, where one-component names
live under "library/".
"""

from __future__ import annotations

import re

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPOSITORY = "library"
NAME_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = f"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = f"{_DOMAIN_COMPONENT}(?:\\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = f"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    f"^(?P<name>(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*))"
    f"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")


class InvalidReference(ValueError):
    pass


class Reference:
    __slots__ = ("domain", "path", "tag", "digest")

    def __init__(self, domain: str, path: str, tag: str | None = None, digest: str | None = None) -> None:
        self.domain = domain
        self.path = path
        self.tag = tag
        self.digest = digest

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __repr__(self) -> str:
        return f"Reference({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Reference) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    @property
    def familiar_name(self) -> str:
        """The name as Docker prints it: docker.io/ and library/ left out."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        if self.path.startswith(OFFICIAL_REPOSITORY + "/") and self.path.count("/") == 1:
            return self.path[len(OFFICIAL_REPOSITORY) + 1:]
        return self.path

    @property
    def familiar(self) -> str:
        return self.familiar_name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def registry_host(self) -> str:
        return "registry-1.docker.io" if self.domain == DEFAULT_DOMAIN else self.domain

    def with_tag(self, tag: str) -> Reference:
        if not re.fullmatch(_TAG, tag):
            raise InvalidReference(f'invalid tag format "{tag}"')
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.path, self.tag, _check_digest(digest, digest))


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost" and first.lower() == first):
        return DEFAULT_DOMAIN, name
    return first, rest


def _check_digest(digest: str, text: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    if algorithm == "sha256" and not _HEX64.match(hexpart):
        raise InvalidReference(f'invalid reference "{text}": sha256 digests must be 64 lowercase hex digits')
    if algorithm != "sha256":
        raise InvalidReference(f'invalid reference "{text}": unsupported digest algorithm "{algorithm}"')
    return digest


def parse(text: str, default_tag: bool = True) -> Reference:
    """A reference in any form the docker CLI accepts, normalised; InvalidReference otherwise."""
    if not text:
        raise InvalidReference("invalid reference format: repository name must not be empty")
    if _HEX64.match(text):
        raise InvalidReference(f'invalid repository name "{text}": cannot specify 64-byte hexadecimal strings')
    name_part, at, digest_part = text.partition("@")
    last_slash = name_part.rfind("/")
    colon = name_part.rfind(":")
    name = name_part[:colon] if colon > last_slash else name_part
    domain, path = _split_domain(name)
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if path != path.lower():
        raise InvalidReference(f'invalid reference format "{text}": repository name must be lowercase')
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"{OFFICIAL_REPOSITORY}/{path}"
    candidate = f"{domain}/{path}" + name_part[len(name):] + (at + digest_part)
    match = _REFERENCE.match(candidate)
    if not match:
        raise InvalidReference(f'invalid reference format "{text}"')
    if len(match["name"]) > NAME_MAX:
        raise InvalidReference(f'invalid reference "{text}": repository name must not be longer than {NAME_MAX} '
                               "characters")
    digest = _check_digest(match["digest"], text) if match["digest"] else None
    tag = match["tag"] or (None if digest or not default_tag else "latest")
    return Reference(domain, path, tag, digest)
