"""The build context (orlop.build.context): unpacking the tar a client sends (compressed or
not, hostile or not: a refused one leaves nothing behind), finding COPY/ADD sources in it as
Docker's classic builder does, and the checksum the step cache keys on."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import tarfile

import pytest
import zstandard

from orlop.build.context import (
    ContextError,
    checksum,
    copy_sources,
    extract,
    prune,
    remove_build_files,
    resolve,
)
from orlop.build.ignore import Matcher

IS_ROOT = os.geteuid() == 0
MTIME = 1_600_000_000


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = MTIME
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def tar(*entries, fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def unpack(tmp_path, data: bytes, name: str = "ctx") -> str:
    dest = tmp_path / name
    extract(io.BytesIO(data), str(dest))
    return str(dest)


def tree(root: str) -> dict[str, str]:
    """{relative path: what it is} of everything under root."""
    out = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                out[rel] = "-> " + os.readlink(path)
            elif os.path.isdir(path):
                out[rel] = "dir"
            else:
                with open(path, "rb") as f:
                    out[rel] = f.read().decode()
    return out


SAMPLE = tar(entry("Dockerfile", data=b"FROM scratch\n"), entry("src", tarfile.DIRTYPE, mode=0o750),
             entry("src/app.py", data=b"print(1)\n", mode=0o755), entry("src/.wh.notawhiteout", data=b"plain"),
             entry("link", tarfile.SYMTYPE, linkname="src/app.py"), entry("abs", tarfile.SYMTYPE, linkname="/etc/passwd"),
             entry("hard", tarfile.LNKTYPE, linkname="src/app.py"), entry("deep/er/file", data=b"implicit parents"))


# --- unpacking ----------------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress, bz2.compress, lzma.compress,
                                      lambda b: zstandard.ZstdCompressor().compress(b)],
                         ids=["plain", "gzip", "bzip2", "xz", "zstd"])
def test_extract_every_compression(tmp_path, compress):
    root = unpack(tmp_path, compress(SAMPLE))
    assert tree(root) == {"Dockerfile": "FROM scratch\n", "src": "dir", "src/app.py": "print(1)\n",
                          "src/.wh.notawhiteout": "plain", "link": "-> src/app.py", "abs": "-> /etc/passwd",
                          "hard": "print(1)\n", "deep": "dir", "deep/er": "dir", "deep/er/file": "implicit parents"}
    assert os.stat(os.path.join(root, "hard")).st_ino == os.stat(os.path.join(root, "src/app.py")).st_ino
    assert stat.S_IMODE(os.stat(os.path.join(root, "src")).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(os.path.join(root, "src/app.py")).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(os.path.join(root, "deep")).st_mode) == 0o755
    assert os.stat(os.path.join(root, "src")).st_mtime == MTIME
    assert os.lstat(os.path.join(root, "link")).st_mtime == MTIME
    assert os.listdir(tmp_path) == ["ctx"]                              # nothing left beside it


def test_extract_an_empty_stream_and_an_empty_archive(tmp_path):
    assert tree(unpack(tmp_path, b"", "a")) == {}
    assert tree(unpack(tmp_path, tar(), "b")) == {}


def test_extract_into_an_existing_empty_directory_only(tmp_path):
    dest = tmp_path / "ctx"
    dest.mkdir(mode=0o700)
    extract(io.BytesIO(SAMPLE), str(dest))
    assert (dest / "Dockerfile").read_text() == "FROM scratch\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    with pytest.raises(ValueError, match="not empty"):
        extract(io.BytesIO(SAMPLE), str(dest))


def test_later_entries_replace_earlier_ones(tmp_path):
    root = unpack(tmp_path, tar(entry("x", tarfile.DIRTYPE), entry("x/old", data=b"old"), entry("x", data=b"file now"),
                                entry("d", tarfile.DIRTYPE), entry("d/keep", data=b"k"),
                                entry("d", tarfile.DIRTYPE, mode=0o700), entry("f", data=b"1"), entry("f", data=b"2"),
                                entry("l", tarfile.SYMTYPE, linkname="a"), entry("l", data=b"no longer a link")))
    assert tree(root) == {"x": "file now", "d": "dir", "d/keep": "k", "f": "2", "l": "no longer a link"}
    assert stat.S_IMODE(os.stat(os.path.join(root, "d")).st_mode) == 0o700


def test_read_only_directories_get_their_mode_after_their_contents(tmp_path):
    root = unpack(tmp_path, tar(entry("ro", tarfile.DIRTYPE, mode=0o555), entry("ro/f", data=b"in")))
    assert open(os.path.join(root, "ro/f")).read() == "in"
    assert stat.S_IMODE(os.stat(os.path.join(root, "ro")).st_mode) == 0o555


def test_long_names_and_dot_slash_names(tmp_path):
    long = "d" * 120 + "/" + "f" * 150
    root = unpack(tmp_path, tar(entry("./", tarfile.DIRTYPE), entry("./a", data=b"a"), entry(long, data=b"long"),
                                fmt=tarfile.GNU_FORMAT))
    assert tree(root)["a"] == "a" and tree(root)[long] == "long"


def assert_refused(tmp_path, data: bytes, message: str) -> None:
    before = set(os.listdir(tmp_path))
    with pytest.raises(ContextError, match=message):
        extract(io.BytesIO(data), str(tmp_path / "ctx"))
    assert set(os.listdir(tmp_path)) == before                          # no ctx, no partial directory


HOSTILE = [
    ("absolute", tar(entry("ok", data=b"x"), entry("/etc/evil", data=b"x")), "absolute name"),
    ("dotdot", tar(entry("../evil", data=b"x")), r"'\.\.' component"),
    ("dotdot-inside", tar(entry("a/../../evil", data=b"x")), r"'\.\.' component"),
    ("dotdot-harmless-looking", tar(entry("a/../b", data=b"x")), r"'\.\.' component"),
    ("through-symlink", tar(entry("link", tarfile.SYMTYPE, linkname="/tmp"), entry("link/evil", data=b"x")),
     "through the symbolic link 'link'"),
    ("through-relative-symlink", tar(entry("up", tarfile.SYMTYPE, linkname=".."), entry("up/evil", data=b"x")),
     "through the symbolic link"),
    ("dir-through-symlink", tar(entry("link", tarfile.SYMTYPE, linkname="/"), entry("link/etc", tarfile.DIRTYPE)),
     "through the symbolic link"),
    ("hardlink-absolute", tar(entry("h", tarfile.LNKTYPE, linkname="/etc/passwd")), "absolute name"),
    ("hardlink-dotdot", tar(entry("h", tarfile.LNKTYPE, linkname="../outside")), r"'\.\.' component"),
    ("hardlink-missing", tar(entry("h", tarfile.LNKTYPE, linkname="nothing")), "not a file earlier in the archive"),
    ("hardlink-to-dir", tar(entry("d", tarfile.DIRTYPE), entry("h", tarfile.LNKTYPE, linkname="d")),
     "not a file earlier"),
    ("hardlink-via-symlink", tar(entry("s", tarfile.SYMTYPE, linkname="/etc"),
                                 entry("h", tarfile.LNKTYPE, linkname="s/passwd")), "not a file earlier"),
    ("chardev", tar(entry("null", tarfile.CHRTYPE, devmajor=1, devminor=3)), "device node"),
    ("blockdev", tar(entry("sda", tarfile.BLKTYPE, devmajor=8, devminor=0)), "device node"),
    ("fifo", tar(entry("pipe", tarfile.FIFOTYPE)), "FIFO"),
    ("file-as-parent", tar(entry("f", data=b"x"), entry("f/child", data=b"y")), "is not a directory"),
]


@pytest.mark.parametrize("data, message", [(d, m) for _, d, m in HOSTILE], ids=[n for n, _, _ in HOSTILE])
def test_hostile_contexts_are_refused_and_leave_nothing(tmp_path, data, message):
    assert_refused(tmp_path, data, message)


def test_nothing_is_written_outside(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    data = tar(entry("link", tarfile.SYMTYPE, linkname=str(outside)), entry("link/evil", data=b"x"))
    assert_refused(tmp_path, data, "symbolic link")
    assert os.listdir(outside) == []


def test_nul_in_a_name(tmp_path):
    info, data = entry("ok", data=b"x")
    info.pax_headers = {"path": "a\0b"}
    assert_refused(tmp_path, tar((info, data)), "NUL")


@pytest.mark.parametrize("data, message", [
    (SAMPLE[:1000], "not a valid tar archive"),                         # truncated inside a file
    (b"\x01" * 1024, "not a valid tar archive"),
    (gzip.compress(SAMPLE)[:-20], "not a valid tar archive"),
    (b"\x1f\x8b" + b"\x00" * 100, "not a valid"),
    (b"BZh9" + b"\x00" * 100, "not a valid"),
    (b"\xfd7zXZ\x00" + b"\x00" * 100, "not a valid"),
    (b"\x28\xb5\x2f\xfd" + b"\x00" * 100, "not a?( valid)"),
    (zstandard.ZstdCompressor().compress(SAMPLE)[:-30], "not a?( valid)"),
], ids=["truncated", "garbage", "truncated-gzip", "bad-gzip", "bad-bzip2", "bad-xz", "bad-zstd",
                          "truncated-zstd"])
def test_broken_archives_are_refused_and_leave_nothing(tmp_path, data, message):
    assert_refused(tmp_path, data, message)


# --- resolving paths inside the context --------------------------------------------------------

@pytest.fixture()
def ctx(tmp_path):
    root = tmp_path / "ctx"
    files = {"Dockerfile": "FROM scratch\n", "a.txt": "a", "b.txt": "b", "c.md": "c", "docs/x.txt": "x",
             "docs/y.md": "y", "docs/sub/z.txt": "z", "star*name": "literal", "etc/passwd": "ctx passwd",
             "logs/debug.log": "d"}
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "abs-link").symlink_to("/etc/passwd")                     # /etc/passwd *of the context*
    (root / "rel-link").symlink_to("docs/x.txt")
    (root / "dir-link").symlink_to("/docs")
    (root / "up-link").symlink_to("../../../../etc")
    (root / "dangling").symlink_to("nowhere")
    (root / "loop").symlink_to("loop")
    return str(root)


def test_resolve_stays_in_the_context(ctx):
    assert resolve(ctx, "a.txt") == os.path.join(ctx, "a.txt")
    assert resolve(ctx, "/a.txt") == os.path.join(ctx, "a.txt")
    assert resolve(ctx, ".") == ctx and resolve(ctx, "/") == ctx
    assert resolve(ctx, "abs-link") == os.path.join(ctx, "etc/passwd")
    assert resolve(ctx, "dir-link/sub/z.txt") == os.path.join(ctx, "docs/sub/z.txt")
    assert resolve(ctx, "up-link/passwd") == os.path.join(ctx, "etc/passwd")
    assert resolve(ctx, "docs/../a.txt") == os.path.join(ctx, "a.txt")
    with pytest.raises(ContextError, match="forbidden path outside the build context: ../x"):
        resolve(ctx, "../x")
    with pytest.raises(ContextError, match="forbidden path outside the build context"):
        resolve(ctx, "docs/../../x")
    with pytest.raises(ContextError, match="too many symbolic links"):
        resolve(ctx, "loop")


# --- COPY/ADD sources -------------------------------------------------------------------------

def names(found) -> list[str]:
    return [name for _, name in found]


def test_plain_sources(ctx):
    assert copy_sources(ctx, ["a.txt", "/b.txt", "./docs", "docs/sub/"]) == [
        (os.path.join(ctx, "a.txt"), "a.txt"), (os.path.join(ctx, "b.txt"), "b.txt"),
        (os.path.join(ctx, "docs"), "docs"), (os.path.join(ctx, "docs/sub"), "docs/sub")]
    assert copy_sources(ctx, ["."]) == [(ctx, ".")]
    assert copy_sources(ctx, ["/"]) == [(ctx, ".")]


def test_wildcards_are_go_filepath_match(ctx):
    assert names(copy_sources(ctx, ["*.txt"])) == ["a.txt", "b.txt"]               # * stops at /
    assert names(copy_sources(ctx, ["docs/*.txt"])) == ["docs/x.txt"]
    assert names(copy_sources(ctx, ["*/*.txt"])) == ["docs/x.txt"]
    assert names(copy_sources(ctx, ["?.md", "[ab].txt"])) == ["c.md", "a.txt", "b.txt"]
    assert names(copy_sources(ctx, ["do*"])) == ["docs"]                          # a directory matches too
    assert names(copy_sources(ctx, ["star*name"])) == ["star*name"]
    with pytest.raises(ContextError, match=r"stat star\\\*name"):         # escaped: a plain (missing) name, as Docker
        copy_sources(ctx, ["star\\*name"])
    assert names(copy_sources(ctx, ["./d*/s*"])) == ["docs/sub"]


def test_symlink_sources_are_followed_inside_the_context(ctx):
    assert copy_sources(ctx, ["abs-link"]) == [(os.path.join(ctx, "etc/passwd"), "abs-link")]
    assert copy_sources(ctx, ["rel-link"]) == [(os.path.join(ctx, "docs/x.txt"), "rel-link")]
    assert copy_sources(ctx, ["dir-link/sub"]) == [(os.path.join(ctx, "docs/sub"), "dir-link/sub")]
    assert copy_sources(ctx, ["up-link/passwd"]) == [(os.path.join(ctx, "etc/passwd"), "up-link/passwd")]
    found = copy_sources(ctx, ["abs-l*"])
    assert found == [(os.path.join(ctx, "etc/passwd"), "abs-link")]


@pytest.mark.parametrize("source, shown", [("missing.txt", "missing.txt"), ("/missing.txt", "missing.txt"),
                                           ("docs/missing", "docs/missing"), ("dangling", "dangling"),
                                           ("a.txt/inside", "a.txt/inside")])
def test_missing_sources_give_dockers_message(ctx, source, shown):
    with pytest.raises(ContextError) as info:
        copy_sources(ctx, ["a.txt", source])
    assert str(info.value) == ("COPY failed: file not found in build context or excluded by .dockerignore: "
                               f"stat {shown}: file does not exist")


def test_wildcards_matching_nothing(ctx):
    assert names(copy_sources(ctx, ["*.nothing", "a.txt"])) == ["a.txt"]
    with pytest.raises(ContextError, match="^ADD failed: no source files were specified$"):
        copy_sources(ctx, ["*.nothing", "none*"], command="ADD")
    with pytest.raises(ContextError, match="syntax error in pattern"):
        copy_sources(ctx, ["[*"])


def test_sources_outside_the_context_are_refused(ctx):
    for source in ("../secret", "docs/../../secret", "/../secret"):
        with pytest.raises(ContextError, match="COPY failed: forbidden path outside the build context"):
            copy_sources(ctx, [source])


def test_excluded_sources_are_not_found(ctx):
    matcher = Matcher(["*.md", "logs", "!docs/y.md"])
    with pytest.raises(ContextError, match="excluded by .dockerignore: stat c.md"):
        copy_sources(ctx, ["c.md"], matcher)
    with pytest.raises(ContextError, match="stat logs/debug.log"):
        copy_sources(ctx, ["logs/debug.log"], matcher)
    assert names(copy_sources(ctx, ["docs/y.md", "*.txt"], matcher)) == ["docs/y.md", "a.txt", "b.txt"]
    assert names(copy_sources(ctx, ["docs/*"], matcher)) == ["docs/sub", "docs/x.txt", "docs/y.md"]
    with pytest.raises(ContextError, match="no source files were specified"):
        copy_sources(ctx, ["*.md"], matcher)


# --- the checksum --------------------------------------------------------------------------------

def test_checksum_is_stable_and_takes_the_forms_of_a_source(ctx):
    first = checksum(ctx, copy_sources(ctx, ["docs", "a.txt"]))
    assert first.startswith("sha256:") and len(first) == 71
    assert checksum(ctx, copy_sources(ctx, ["docs", "a.txt"])) == first
    assert checksum(ctx, ["docs", "a.txt"]) == first
    assert checksum(ctx, [os.path.join(ctx, "docs"), os.path.join(ctx, "a.txt")]) == first
    assert checksum(ctx, ["a.txt", "docs"]) != first                   # sources in order


def change(ctx: str, what: str) -> None:
    path = os.path.join(ctx, "docs/x.txt")
    if what == "content":
        open(path, "w").write("X")
    elif what == "mode":
        os.chmod(path, 0o600)
    elif what == "setuid":
        os.chmod(path, os.stat(path).st_mode | stat.S_ISUID)
    elif what == "rename":
        os.rename(path, os.path.join(ctx, "docs/x2.txt"))
    elif what == "new file":
        open(os.path.join(ctx, "docs/new"), "w").close()
    elif what == "new empty dir":
        os.mkdir(os.path.join(ctx, "docs/empty"))
    elif what == "removed":
        os.unlink(path)
    elif what == "file to symlink":
        os.unlink(path)
        os.symlink("x", path)
    elif what == "symlink target":
        os.symlink("a", os.path.join(ctx, "docs/l"))


@pytest.mark.parametrize("what", ["content", "mode", "setuid", "rename", "new file", "new empty dir", "removed",
                                  "file to symlink"])
def test_checksum_changes_with_what_is_copied(ctx, what):
    before = checksum(ctx, ["docs"])
    change(ctx, what)
    assert checksum(ctx, ["docs"]) != before


def test_checksum_sees_symlink_targets(ctx):
    os.symlink("a", os.path.join(ctx, "docs/l"))
    before = checksum(ctx, ["docs"])
    os.unlink(os.path.join(ctx, "docs/l"))
    os.symlink("b", os.path.join(ctx, "docs/l"))
    assert checksum(ctx, ["docs"]) != before


def test_checksum_includes_the_names_a_wildcard_copies(ctx):
    before = checksum(ctx, copy_sources(ctx, ["*.txt"]))
    os.rename(os.path.join(ctx, "b.txt"), os.path.join(ctx, "bb.txt"))
    assert checksum(ctx, copy_sources(ctx, ["*.txt"])) != before


def test_checksum_ignores_times_and_by_default_owners(ctx):
    before = checksum(ctx, ["docs", "a.txt"])
    with_owners = checksum(ctx, ["docs", "a.txt"], owners=True)
    os.utime(os.path.join(ctx, "docs/x.txt"), (1, 1))
    os.utime(os.path.join(ctx, "docs"), (2, 2))
    assert checksum(ctx, ["docs", "a.txt"]) == before
    if IS_ROOT:
        os.lchown(os.path.join(ctx, "a.txt"), 1234, 5678)
        assert checksum(ctx, ["docs", "a.txt"]) == before
        assert checksum(ctx, ["docs", "a.txt"], owners=True) != with_owners


def test_checksum_leaves_out_what_is_excluded(ctx):
    matcher = Matcher(["docs/sub"])
    before = checksum(ctx, ["docs"], matcher)
    open(os.path.join(ctx, "docs/sub/z.txt"), "w").write("changed")
    assert checksum(ctx, ["docs"], matcher) == before
    assert checksum(ctx, ["docs"]) != checksum(ctx, ["docs"], matcher)


def test_checksum_of_a_missing_source(ctx):
    with pytest.raises(ContextError):
        checksum(ctx, [os.path.join(ctx, "missing")])


# --- what .dockerignore removes -----------------------------------------------------------------

def test_remove_build_files(ctx):
    open(os.path.join(ctx, ".dockerignore"), "w").write("Dockerfile\n.dockerignore\n")
    remove_build_files(ctx, Matcher(["*.md"]), "Dockerfile")
    assert os.path.exists(os.path.join(ctx, "Dockerfile"))
    remove_build_files(ctx, Matcher(["Dockerfile", ".dockerignore"]), "Dockerfile")
    assert not os.path.exists(os.path.join(ctx, "Dockerfile")) and not os.path.exists(os.path.join(ctx, ".dockerignore"))


def test_prune(ctx):
    prune(ctx, Matcher(["*.md", "docs", "!docs/sub", "logs", "abs-link"]))
    left = tree(ctx)
    assert "c.md" not in left and "logs" not in left and "abs-link" not in left
    assert left["docs/sub/z.txt"] == "z" and "docs/x.txt" not in left and "docs/y.md" not in left
    assert left["a.txt"] == "a" and left["etc/passwd"] == "ctx passwd"
    assert os.path.exists("/etc/passwd")                                # the link was removed, not its target
