"""Read an image archive (a tar, maybe compressed) in one pass, without writing a file of
it anywhere but the content store.

Every member is checked as it comes: absolute names, `..` components, NUL bytes and
special files (devices, fifos) are refused, and so are links leading out of the archive.
`blobs/sha256/<hex>` members are streamed into the content store and verified against
the digest their name claims (a layer is stored once, whatever refers to it); other
small files (manifest.json, index.json, configs of old archives) are kept in memory,
large ones (old archives' `<id>/layer.tar`) go to the content store under their digest.
Nothing is named here: the content store only gains blobs, which garbage collection
removes if the load goes no further.
"""

from __future__ import annotations

import json
import posixpath
import re
import tarfile
import uuid
from typing import BinaryIO, NamedTuple

from orlop.images.archive_format import ArchiveError, copy_hashed, decompressed
from orlop.images.content import ContentError, ContentStore, sha256_digest

SMALL = 1 << 20            # files up to this size are kept in memory...
IN_MEMORY = 64 << 20       # ...as long as they add up to no more than this
MAX_MEMBERS = 100_000      # an image archive has a few per layer
MAX_LINK_HOPS = 40         # as the kernel's symlink limit
_BLOB = re.compile(r"blobs/sha256/([0-9a-f]{64})")


class Member(NamedTuple):
    kind: str                   # "file", "dir", "symlink" or "hardlink"
    size: int = 0
    data: bytes | None = None   # a small file's bytes
    digest: str | None = None   # where a large file or a blob is in the content store
    target: str | None = None   # a link's target, as a normalised archive path


def normalise(name: str, what: str) -> str:
    """"./blobs//sha256/x" -> "blobs/sha256/x"; refuses what would leave the archive's root."""
    if "\0" in name:
        raise ArchiveError(f"{what} {name!r} contains a NUL byte")
    if name.startswith("/"):
        raise ArchiveError(f"{what} {name!r} is an absolute path: an image archive only holds relative paths")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{what} {name!r} contains '..': an image archive never refers outside itself")
    return "/".join(parts)


def _link_target(member: tarfile.TarInfo, name: str) -> str:
    """A symlink's target relative to its directory (a hard link's to the root), checked
    to stay inside the archive."""
    link = member.linkname
    if "\0" in link or link.startswith("/"):
        raise ArchiveError(f"link {name!r} -> {link!r} points outside the archive (absolute path)")
    base = posixpath.dirname(name) if member.issym() else ""
    joined = posixpath.normpath(posixpath.join(base, link)) if link else "."
    if joined == ".." or joined.startswith("../"):
        raise ArchiveError(f"link {name!r} -> {link!r} leads out of the archive")
    return "" if joined == "." else joined


class ArchiveIndex:
    """The members of an archive by normalised name, and ways to read them."""

    def __init__(self, content: ContentStore) -> None:
        self.content = content
        self.members: dict[str, Member] = {}
        self.written: set[str] = set()   # blobs this load added to the content store

    def put(self, data: bytes) -> str:
        """A small file into the content store (noted if it was not there)."""
        digest = sha256_digest(data)
        if not self.content.exists(digest):
            self.content.put(data, digest)
            self.written.add(digest)
        return digest

    def __contains__(self, path: str) -> bool:
        try:
            self.resolve(path, "file")
        except ArchiveError:
            return False
        return True

    def resolve(self, path: str, what: str) -> Member:
        """The regular file at `path`, following links (inside the archive only)."""
        wanted = normalise(path, what)
        for _ in range(MAX_LINK_HOPS):
            parts, rewritten = wanted.split("/"), None
            for i in range(1, len(parts) + 1):   # a symlink may stand for any leading directory
                member = self.members.get("/".join(parts[:i]))
                if member is not None and member.kind in ("symlink", "hardlink"):
                    rewritten = "/".join([member.target, *parts[i:]]).strip("/")
                    break
            if rewritten is None:
                member = self.members.get(wanted)
                if member is None or member.kind != "file":
                    raise ArchiveError(f"the archive has no file {path!r} ({what})")
                return member
            wanted = rewritten
        raise ArchiveError(f"{what} {path!r}: too many levels of links in the archive")

    def read(self, path: str, what: str) -> bytes:
        member = self.resolve(path, what)
        return member.data if member.data is not None else self.content.read(member.digest)

    def read_json(self, path: str, what: str):
        try:
            return json.loads(self.read(path, what))
        except ValueError as e:
            raise ArchiveError(f"{what} {path!r} is not valid JSON: {e}") from None

    def stored(self, path: str, what: str) -> tuple[str, int]:
        """(digest, size) of the file in the content store, putting it there if it is small."""
        member = self.resolve(path, what)
        if member.digest is None:
            return self.put(member.data), member.size
        return member.digest, member.size


def read_archive(stream: BinaryIO, content: ContentStore, index: ArchiveIndex | None = None) -> ArchiveIndex:
    """One pass over the (maybe gzip, zstd, bzip2 or xz compressed) tar read from `stream`
    (into `index`, whose `written` says what it stored even when the read fails)."""
    index = index or ArchiveIndex(content)
    in_memory = 0
    try:
        with tarfile.open(fileobj=decompressed(stream), mode="r|") as tar:
            for member in tar:
                if len(index.members) >= MAX_MEMBERS:
                    raise ArchiveError(f"the archive has more than {MAX_MEMBERS} members: not an image archive")
                name = normalise(member.name, "archive member")
                if member.isdir():
                    index.members[name] = Member("dir")
                elif member.issym() or member.islnk():
                    index.members[name] = Member("symlink" if member.issym() else "hardlink",
                                                 target=_link_target(member, name))
                elif member.isreg():
                    keep = member.size <= SMALL and in_memory + member.size <= IN_MEMORY
                    index.members[name] = _read_file(tar, member, name, index, keep)
                    in_memory += len(index.members[name].data or b"")
                else:
                    raise ArchiveError(f"archive member {name!r} is a device, fifo or other special file: "
                                       "an image archive holds only files, directories and links")
    except tarfile.TarError as e:
        raise ArchiveError(f"not a valid tar archive: {e}") from None
    except EOFError as e:
        raise ArchiveError(f"the archive is truncated: {e}") from None
    if not index.members:
        raise ArchiveError("the archive is empty")
    return index


def _read_file(tar: tarfile.TarFile, member: tarfile.TarInfo, name: str, index: ArchiveIndex,
               in_memory: bool) -> Member:
    content = index.content
    data = tar.extractfile(member)
    blob = _BLOB.fullmatch(name)
    if blob is None and in_memory:
        return Member("file", member.size, data=data.read())
    expected = f"sha256:{blob.group(1)}" if blob else None
    ref = f"load-{expected}" if expected else f"load-{uuid.uuid4().hex}"
    try:
        with content.writer(ref, expected, member.size) as writer:
            if writer.committed:          # stored already: the tar skips the data
                return Member("file", member.size, digest=expected)
            if writer.offset:
                writer.truncate()
            copy_hashed(data, writer)
            if writer.offset != member.size:
                raise ArchiveError(f"archive member {name!r} is truncated")
            digest = writer.commit()
            index.written.add(digest)
            return Member("file", member.size, digest=digest)
    except ContentError as e:
        if expected:
            raise ArchiveError(f"blob {name!r} does not match its digest: the archive is corrupt ({e})") from None
        raise
