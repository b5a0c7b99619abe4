"""Image references, parsed and normalised as Docker does.

Docker (the CLI and dockerd) parses every image name with distribution/reference's
``ParseNormalizedNamed`` and then adds ``:latest`` with ``TagNameOnly``; this module follows both:

    busybox                          -> docker.io/library/busybox:latest     (familiar: busybox:latest)
    user/app:1                       -> docker.io/user/app:1                 (familiar: user/app:1)
    index.docker.io/debian           -> docker.io/library/debian:latest      (familiar: debian:latest)
    localhost:5000/app@sha256:<hex>  -> localhost:5000/app@sha256:<hex>      (no tag is added to a digest)
    busybox:1@sha256:<hex>           -> docker.io/library/busybox:1@sha256:<hex>

Grammar (distribution/reference)::

    reference   := name [ ":" tag ] [ "@" digest ]
    name        := [ domain "/" ] path
    domain      := host [ ":" port ]      host: DNS-like labels (upper case allowed) | IPv4 | "[" IPv6 "]"
    path        := component [ "/" component ]*          at most 255 characters (the domain not counted)
    component   := [a-z0-9]+ ( separator [a-z0-9]+ )*    separator: "." | "_" | "__" | "-"+
    tag         := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest      := algorithm ":" hex            sha256: 64, sha384: 96, sha512: 128 lowercase hex digits

Normalisation: the text before the first "/" is the registry when it is "localhost", contains "." or
":", or has an upper-case letter; otherwise (and always for a name without "/") the image is on
Docker Hub, "docker.io", where one-component paths live under "library/". "index.docker.io" is
Docker Hub's legacy name and becomes "docker.io". A bare 64-hex string is refused, because Docker
reads it as an image ID.

One deliberate difference: a first component that Docker takes for a registry (it has a "." or
":") but that is not a valid host name, such as ``foo_bar.com/app``, is accepted by Docker as a
reference without any registry (which no pull can use); here it is an error.
"""

from __future__ import annotations

import re

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
DOCKER_HUB_REGISTRY = "registry-1.docker.io"
OFFICIAL_REPOSITORY_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_MAX = 255

# Digest algorithms dockerd accepts (go-digest with crypto/sha256 and crypto/sha512 linked in) and the
# number of lowercase hex digits each needs.
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"

# re.ASCII: Go's \w is [0-9A-Za-z_]; fullmatch() everywhere: Go's $ is the end of the text.
_REFERENCE_RE = re.compile(rf"((?:{_DOMAIN}/)?{_PATH})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_NAME_RE = re.compile(rf"(?:({_DOMAIN})/)?({_PATH})", re.ASCII)
_DOMAIN_RE = re.compile(_DOMAIN, re.ASCII)
_PATH_COMPONENT_RE = re.compile(_PATH_COMPONENT, re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_DIGEST_RE = re.compile(_DIGEST, re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
# go-digest's own digest grammar, which decides "invalid format" against "unsupported algorithm".
_GO_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+", re.ASCII)

_FORMAT = "invalid reference format"


class InvalidReference(ValueError):
    """A string that is not an image reference.

    ``str()`` names the input and what is wrong with it; ``docker_message`` is the text Docker's own
    parser reports for the same input (e.g. "invalid reference format"), for API responses.
    """

    def __init__(self, text: str, reason: str, docker_message: str | None = None) -> None:
        self.text = text
        self.reason = reason
        self.docker_message = docker_message or reason
        super().__init__(f"invalid reference {_quote(text)}: {reason}")


def _quote(text: str) -> str:
    shown = text if len(text) <= 300 else text[:300] + "..."
    return '"' + shown.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Reference:
    """A normalised image reference; immutable and hashable, ``str()`` is the full form."""

    __slots__ = ("domain", "path", "tag", "digest")

    domain: str
    path: str
    tag: str | None
    digest: str | None

    def __init__(self, domain: str, path: str, tag: str | None = None, digest: str | None = None) -> None:
        # Unchecked: build references with parse(), with_tag() and with_digest().
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "tag", tag)
        object.__setattr__(self, "digest", digest)

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f"Reference is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Reference is immutable (cannot delete {name!r})")

    def __reduce__(self):
        return (Reference, (self.domain, self.path, self.tag, self.digest))

    @property
    def name(self) -> str:
        """domain/path, e.g. "docker.io/library/busybox"."""
        return f"{self.domain}/{self.path}"

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag is not None else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()

    def __repr__(self) -> str:
        return f"Reference({str(self)!r})"

    def __eq__(self, other) -> bool:
        if not isinstance(other, Reference):
            return NotImplemented
        return (self.domain, self.path, self.tag, self.digest) == (other.domain, other.path, other.tag, other.digest)

    def __hash__(self) -> int:
        return hash((self.domain, self.path, self.tag, self.digest))

    @property
    def familiar_name(self) -> str:
        """The name as Docker shows it: "docker.io/" left out, and "library/" for one-component paths."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        if self.path.startswith(OFFICIAL_REPOSITORY_PREFIX):
            rest = self.path[len(OFFICIAL_REPOSITORY_PREFIX):]
            if "/" not in rest:
                return rest
        return self.path

    @property
    def familiar(self) -> str:
        """Docker's short form with tag and digest: "busybox:latest", "localhost:5000/app@sha256:..."."""
        return self.familiar_name + self._suffix()

    @property
    def registry_host(self) -> str:
        """The registry to contact: Docker Hub's "docker.io" is served by registry-1.docker.io."""
        return DOCKER_HUB_REGISTRY if self.domain == DEFAULT_DOMAIN else self.domain

    def with_tag(self, tag: str) -> Reference:
        """The same repository with this tag (a digest, if any, is kept, as Docker's WithTag does)."""
        if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag):
            raise InvalidReference(f"{self.name}:{tag}", f"invalid tag {_quote(str(tag))}: {_TAG_RULE}",
                                   "invalid tag format")
        return Reference(self.domain, self.path, tag, self.digest)

    def with_digest(self, digest: str) -> Reference:
        """The same repository with this digest (a tag, if any, is kept, as Docker's WithDigest does)."""
        text = f"{self.name}@{digest}"
        if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
            raise InvalidReference(text, f"invalid digest {_quote(str(digest))}: {_DIGEST_RULE}",
                                   "invalid digest format")
        _check_digest(digest, text)
        return Reference(self.domain, self.path, self.tag, digest)


_TAG_RULE = ('a tag is 1 to 128 of A-Z a-z 0-9 "_" "." "-" and does not start with "." or "-"')
_DIGEST_RULE = "a digest is algorithm:hex with at least 32 hex digits, e.g. sha256:<64 lowercase hex>"
_COMPONENT_RULE = ('path components are lowercase letters and digits, joined by ".", "_", "__" '
                   'or any number of "-"')


def _check_digest(digest: str, text: str) -> None:
    """go-digest's validation of a digest that already matched the reference grammar."""
    algorithm, _, encoded = digest.partition(":")
    length = DIGEST_HEX_LENGTHS.get(algorithm)
    if length is None:
        if not _GO_DIGEST_RE.fullmatch(digest):
            raise InvalidReference(text, f"invalid digest {_quote(digest)}: malformed algorithm {_quote(algorithm)}",
                                   "invalid checksum digest format")
        raise InvalidReference(text, f"unsupported digest algorithm {_quote(algorithm)} "
                               f"(supported: {', '.join(DIGEST_HEX_LENGTHS)})", "unsupported digest algorithm")
    if len(encoded) != length or not re.fullmatch(r"[a-f0-9]+", encoded):
        raise InvalidReference(text, f"invalid digest {_quote(digest)}: {algorithm} needs exactly {length} "
                               f"lowercase hex digits", "invalid checksum digest format")


def _split_docker_domain(text: str) -> tuple[str, str]:
    """normalize.go's splitDockerDomain: (domain, remainder); the remainder still carries tag and digest."""
    first, slash, rest = text.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, OFFICIAL_REPOSITORY_PREFIX + text
    if first == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, rest
    elif first == "localhost" or "." in first or ":" in first or first.lower() != first:
        domain, remote = first, rest
    else:
        domain, remote = DEFAULT_DOMAIN, text
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPOSITORY_PREFIX + remote
    return domain, remote


def _diagnose(text: str, candidate: str) -> str:
    """Which part of a reference that does not match the grammar is wrong, in words."""
    if not text:
        return "empty reference"
    name, at, digest = candidate.partition("@")
    if at and not _DIGEST_RE.fullmatch(digest):
        return f"invalid digest {_quote(digest)}: {_DIGEST_RULE}"
    slash = name.rfind("/")
    colon = name.find(":", slash + 1)
    if colon != -1:
        name, tag = name[:colon], name[colon + 1:]
        if not _TAG_RE.fullmatch(tag):
            return f"invalid tag {_quote(tag)}: {_TAG_RULE}"
    domain, _, path = name.partition("/")
    if not _DOMAIN_RE.fullmatch(domain):
        return (f"invalid registry host {_quote(domain)} (a first component that contains \".\" or \":\" or "
                "upper case names the registry)")
    for component in path.split("/"):
        if not _PATH_COMPONENT_RE.fullmatch(component):
            shown = "an empty path component" if not component else f"invalid path component {_quote(component)}"
            return f"{shown}: {_COMPONENT_RULE}"
    return _FORMAT


def parse(text: str, default_tag: bool = True) -> Reference:
    """A reference in any form the docker CLI accepts, normalised as Docker does.

    ``default_tag``: add ":latest" when there is neither tag nor digest (Docker's TagNameOnly).
    Raises InvalidReference.
    """
    if not isinstance(text, str):
        raise TypeError(f"an image reference is a str, not {type(text).__name__}")
    if _IDENTIFIER_RE.fullmatch(text):
        raise InvalidReference(text, "cannot specify 64-byte hexadecimal strings (that is an image ID, "
                               "not a repository name)",
                               f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(text)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise InvalidReference(text, f"repository name ({remote}) must be lowercase",
                               f"{_FORMAT}: repository name ({remote}) must be lowercase")

    candidate = f"{domain}/{remainder}"
    match = _REFERENCE_RE.fullmatch(candidate)
    if match is None:
        lowered = candidate.lower()
        if lowered != candidate and _REFERENCE_RE.fullmatch(lowered):
            raise InvalidReference(text, "repository name must be lowercase")
        raise InvalidReference(text, _diagnose(text, candidate), _FORMAT)
    name, tag, digest = match.groups()

    name_match = _NAME_RE.fullmatch(name)
    assert name_match is not None
    domain, path = name_match.groups()
    if domain is None:
        # Docker keeps such a name without any registry; see the module docstring.
        first = name.partition("/")[0]
        raise InvalidReference(text, f"{_quote(first)} is taken for a registry (it contains \".\" or \":\" or upper "
                               "case) but is not a valid host name")
    if len(path) > NAME_MAX:
        raise InvalidReference(text, f"repository name must not be more than {NAME_MAX} characters "
                               f"(\"{path[:20]}...\" has {len(path)})",
                               f"repository name must not be more than {NAME_MAX} characters")
    if digest is not None:
        _check_digest(digest, text)
    elif tag is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)
