"""Layer unpacking: tar streams built in memory, applied to a directory, checked on disk.

Hostile layers must be refused with a message naming the entry, and leave nothing at all
behind: not in the destination, not beside it, not outside it."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile

import pytest

from orlop.snapshots.unpack import HostileLayer, LayerError, unpack_layer

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (chown, mknod, trusted.* xattrs)")
MTIME = 1_600_000_000


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    ti.mtime = MTIME
    for key, value in attrs.items():
        setattr(ti, key, value)
    return ti, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


def unpack(tmp_path, blob: bytes, **kw):
    dest = tmp_path / "layer"
    return dest, unpack_layer(io.BytesIO(blob), str(dest), **kw)


def tree(path) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, n), path) for d, dirs, files in os.walk(path)
                  for n in dirs + files)


def test_files_dirs_modes_owners_mtimes_and_diff_id(tmp_path):
    blob = make_tar(
        entry("./", tarfile.DIRTYPE, mode=0o755),
        entry("etc/", tarfile.DIRTYPE, mode=0o750),
        entry("etc/hostname", data=b"box\n", mode=0o640, uid=1000, gid=1001),
        entry("bin/", tarfile.DIRTYPE),
        entry("bin/su", data=b"#!", mode=0o4755),
        entry("tmp/", tarfile.DIRTYPE, mode=0o1777),
        entry("deep/a/b/c.txt", data=b"implicit parents"),
        entry("empty"),
    )
    dest, stats = unpack(tmp_path, blob)
    assert stats.diff_id == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert stats.bytes == len(blob) and stats.files == 8
    assert tree(dest) == ["bin", "bin/su", "deep", "deep/a", "deep/a/b", "deep/a/b/c.txt", "empty",
                          "etc", "etc/hostname", "tmp"]
    assert (dest / "etc/hostname").read_bytes() == b"box\n"
    assert (dest / "deep/a/b/c.txt").read_bytes() == b"implicit parents"
    assert stat.S_IMODE(os.stat(dest / "etc").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(dest / "etc/hostname").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(dest / "bin/su").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(dest / "tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(dest / "deep/a").st_mode) == 0o755
    if IS_ROOT:
        st = os.stat(dest / "etc/hostname")
        assert (st.st_uid, st.st_gid) == (1000, 1001)
    # directory mtimes are set after their contents were written
    for name in ("", "etc", "bin", "tmp", "etc/hostname", "empty"):
        assert os.stat(dest / name).st_mtime_ns == MTIME * 10**9, name
    assert not [n for n in os.listdir(tmp_path) if n != "layer"], "no temp dir left beside dest"


def test_pax_mtime_keeps_nanoseconds(tmp_path):
    ti, data = entry("f", data=b"x")
    ti.pax_headers = {"mtime": "1600000000.123456789"}
    dest, _ = unpack(tmp_path, make_tar((ti, data)))
    assert os.stat(dest / "f").st_mtime_ns == 1600000000_123456789


def test_gzip_zstd_and_uncompressed_give_the_same_layer_and_diff_id(tmp_path):
    blob = make_tar(entry("a/b", data=os.urandom(300_000)), entry("c", data=b"c" * 3_000_000))
    want = "sha256:" + hashlib.sha256(blob).hexdigest()
    variants = {"none": blob, "gzip": gzip.compress(blob),
                "gzip-multi-member": gzip.compress(blob[:7000]) + gzip.compress(blob[7000:])}
    zstandard = pytest.importorskip("zstandard")
    variants["zstd"] = zstandard.ZstdCompressor().compress(blob)
    for label, data in variants.items():
        for compression in (None, label.split("-")[0]):
            dest = tmp_path / f"{label}-{compression}"
            stats = unpack_layer(io.BytesIO(data), str(dest), compression=compression)
            assert stats.diff_id == want and stats.bytes == len(blob), label
            assert (dest / "c").read_bytes() == b"c" * 3_000_000
            assert (dest / "a/b").stat().st_size == 300_000


def test_truncated_and_corrupt_streams_leave_nothing(tmp_path):
    blob = make_tar(entry("a", data=os.urandom(100_000)), entry("b", data=b"b"))
    for label, data in {"truncated tar": blob[:50_000], "truncated gzip": gzip.compress(blob)[:-100],
                        "corrupt gzip": b"\x1f\x8b" + b"\0" * 100}.items():
        with pytest.raises(LayerError, match="truncated|gzip|corrupt"):
            unpack(tmp_path, data)
        assert os.listdir(tmp_path) == [], label


def test_expected_diff_id_is_checked_before_the_layer_appears(tmp_path):
    blob = make_tar(entry("a", data=b"a"))
    with pytest.raises(LayerError, match="the image config expects sha256:0000"):
        unpack(tmp_path, blob, expected_diff_id="sha256:" + "0" * 64)
    assert os.listdir(tmp_path) == []
    _, stats = unpack(tmp_path, blob, expected_diff_id="sha256:" + hashlib.sha256(blob).hexdigest())
    assert stats.files == 1


def test_dest_must_be_empty_and_an_existing_empty_dest_is_replaced(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full/x").write_text("x")
    with pytest.raises(ValueError, match="is not empty"):
        unpack_layer(io.BytesIO(make_tar(entry("a"))), str(tmp_path / "full"))
    (tmp_path / "layer").mkdir()
    dest, _ = unpack(tmp_path, make_tar(entry("a", data=b"1")))
    assert (dest / "a").read_bytes() == b"1"


def test_symlinks_are_created_as_given_and_never_followed(tmp_path):
    blob = make_tar(
        entry("abs", tarfile.SYMTYPE, linkname="/etc/passwd"),
        entry("up", tarfile.SYMTYPE, linkname="../../../../etc"),
        entry("rel", tarfile.SYMTYPE, linkname="abs"),
        entry("abs", tarfile.SYMTYPE, linkname="/etc/shadow"),    # replaces the first one
    )
    dest, _ = unpack(tmp_path, blob)
    assert os.readlink(dest / "abs") == "/etc/shadow"
    assert os.readlink(dest / "up") == "../../../../etc"
    assert os.readlink(dest / "rel") == "abs"
    assert os.lstat(dest / "abs").st_mtime_ns == MTIME * 10**9


def test_hard_links_share_the_inode(tmp_path):
    blob = make_tar(entry("bin/busybox", data=b"ELF", mode=0o755),
                    entry("bin/sh", tarfile.LNKTYPE, linkname="bin/busybox"),
                    entry("usr/bin/env", tarfile.LNKTYPE, linkname="./bin/busybox"))
    dest, _ = unpack(tmp_path, blob)
    ino = os.stat(dest / "bin/busybox").st_ino
    assert os.stat(dest / "bin/sh").st_ino == ino == os.stat(dest / "usr/bin/env").st_ino
    assert os.stat(dest / "bin/busybox").st_nlink == 3


def test_later_entries_replace_earlier_ones(tmp_path):
    blob = make_tar(entry("x/inner", data=b"old"), entry("x", data=b"file now"),
                    entry("y", data=b"old"), entry("y/", tarfile.DIRTYPE), entry("y/z", data=b"new"))
    dest, _ = unpack(tmp_path, blob)
    assert (dest / "x").read_bytes() == b"file now"
    assert (dest / "y/z").read_bytes() == b"new"


@needs_root
def test_whiteouts_become_overlay_whiteouts_and_opaque_dirs(tmp_path):
    blob = make_tar(
        entry("etc/", tarfile.DIRTYPE),
        entry("etc/.wh.motd"),
        entry("var/cache/.wh..wh..opq"),
        entry("var/cache/new", data=b"n"),
        entry(".wh.gone-dir"),
        entry(".wh..wh.plnk/123", data=b"aufs bookkeeping"),
        entry("redo/", tarfile.DIRTYPE), entry(".wh.redo"),     # same-layer dir + whiteout: opaque dir
    )
    dest, _ = unpack(tmp_path, blob)
    for name in ("etc/motd", "gone-dir"):
        st = os.lstat(dest / name)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0, name
    assert os.getxattr(dest / "var/cache", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(dest / "redo", "trusted.overlay.opaque") == b"y"
    assert (dest / "var/cache/new").read_bytes() == b"n"
    assert not (dest / ".wh..wh.plnk").exists()
    assert not [n for n in tree(dest) if ".wh." in n]
    with pytest.raises(OSError):
        os.getxattr(dest / "etc", "trusted.overlay.opaque")


@needs_root
def test_devices_fifos_and_xattrs(tmp_path):
    ti_file, data = entry("bin/ping", data=b"ELF", mode=0o755)
    cap = b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    ti_file.pax_headers = {"SCHILY.xattr.security.capability": cap.decode("utf-8", "surrogateescape"),
                           "SCHILY.xattr.user.note": "hello",
                           "SCHILY.xattr.trusted.overlay.opaque": "y"}     # never taken from a layer
    blob = make_tar(
        entry("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666, uid=0, gid=0),
        entry("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o660, gid=6),
        entry("run/fifo", tarfile.FIFOTYPE, mode=0o620, uid=5, gid=7),
        (ti_file, data),
    )
    dest, _ = unpack(tmp_path, blob)
    st = os.lstat(dest / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert stat.S_IMODE(st.st_mode) == 0o666
    st = os.lstat(dest / "dev/sda")
    assert stat.S_ISBLK(st.st_mode) and (os.major(st.st_rdev), st.st_gid) == (8, 6)
    st = os.lstat(dest / "run/fifo")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620 and (st.st_uid, st.st_gid) == (5, 7)
    assert st.st_mtime_ns == MTIME * 10**9
    assert os.getxattr(dest / "bin/ping", "security.capability") == cap
    assert os.getxattr(dest / "bin/ping", "user.note") == b"hello"
    assert "trusted.overlay.opaque" not in os.listxattr(dest / "bin/ping")


# --- hostile layers ----------------------------------------------------------------------

def _huge(name: str) -> bytes:
    """A header claiming 2 TiB of data (the data itself never follows)."""
    ti = tarfile.TarInfo(name)
    ti.size = 2 << 40
    return ti.tobuf(tarfile.GNU_FORMAT) + b"\0" * 4096


def _nul_name() -> bytes:
    ti, data = entry("innocent", data=b"x")
    ti.pax_headers = {"path": "ok\0/../../escape"}
    return make_tar((ti, data))


HOSTILE = {
    "dotdot": (lambda o: make_tar(entry("../x", data=b"x")), r"'\.\./x'.*'\.\.' component"),
    "absolute": (lambda o: make_tar(entry(f"{o}/x", data=b"x")), r"absolute path"),
    "absolute-etc": (lambda o: make_tar(entry("/etc/orlop-unpack-test-must-not-exist", data=b"x")),
                     "absolute path '/etc/orlop-unpack-test-must-not-exist'"),
    "inner-dotdot": (lambda o: make_tar(entry("a/", tarfile.DIRTYPE), entry("a/../../x", data=b"x")),
                     r"'a/\.\./\.\./x'.*'\.\.' component"),
    "through-symlink": (lambda o: make_tar(entry("evil", tarfile.SYMTYPE, linkname=o),
                                           entry("evil/passwd", data=b"root::0:0::/:/bin/sh")),
                        "'evil/passwd': path passes through the symlink 'evil'"),
    "through-symlink-dir-entry": (lambda o: make_tar(entry("evil", tarfile.SYMTYPE, linkname=o),
                                                     entry("evil/sub/", tarfile.DIRTYPE)),
                                  "'evil/sub': path passes through the symlink 'evil'"),
    "whiteout-through-symlink": (lambda o: make_tar(entry("evil", tarfile.SYMTYPE, linkname=o),
                                                    entry("evil/.wh.victim")),
                                 "passes through the symlink 'evil'"),
    "hardlink-out": (lambda o: make_tar(entry("a", data=b"a"),
                                        entry("x", tarfile.LNKTYPE, linkname="../../etc/passwd")),
                     r"'x': hard link target '\.\./\.\./etc/passwd' has a '\.\.' component"),
    "hardlink-absolute": (lambda o: make_tar(entry("x", tarfile.LNKTYPE, linkname=f"{o}/victim")),
                          "'x': absolute hard link target"),
    "hardlink-through-symlink": (lambda o: make_tar(entry("evil", tarfile.SYMTYPE, linkname=o),
                                                    entry("x", tarfile.LNKTYPE, linkname="evil/victim")),
                                 "'x': hard link target passes through the symlink 'evil'"),
    "hardlink-missing": (lambda o: make_tar(entry("x", tarfile.LNKTYPE, linkname="nowhere")),
                         "'x': hard link target 'nowhere' is not a file of this layer"),
    "nul": (lambda o: _nul_name(), "NUL byte in its path"),
    "huge": (lambda o: entry("a")[0].tobuf(tarfile.GNU_FORMAT) + _huge("big"),
             r"'big': size 2199023255552 exceeds the limit"),
    "long-name": (lambda o: make_tar(entry("d/" * 2100 + "f", data=b"x")), "longer than 4096 bytes"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layer_is_refused_and_leaves_nothing(tmp_path, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("precious")
    work = tmp_path / "work"
    work.mkdir()
    build, message = HOSTILE[case]
    blob = build(str(outside))
    with pytest.raises(HostileLayer, match=message):
        unpack_layer(io.BytesIO(blob), str(work / "layer"))
    assert os.listdir(work) == [], "nothing of the layer is left, not even its temp dir"
    assert os.listdir(outside) == ["victim"] and (outside / "victim").read_text() == "precious"
    assert os.stat(outside / "victim").st_nlink == 1
    assert not os.path.lexists("/etc/orlop-unpack-test-must-not-exist")
    # also into an existing, empty destination: it stays as it was
    (work / "layer").mkdir()
    with pytest.raises(HostileLayer):
        unpack_layer(io.BytesIO(blob), str(work / "layer"))
    assert os.listdir(work) == ["layer"] and os.listdir(work / "layer") == []


def test_max_size_is_configurable(tmp_path):
    with pytest.raises(HostileLayer, match="'big': size 1000 exceeds the limit of 999 bytes"):
        unpack(tmp_path, make_tar(entry("big", data=b"x" * 1000)), max_size=999)
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not shutil.which("tar"), reason="needs GNU tar to write a sparse archive")
@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_sparse_files_from_gnu_tar(tmp_path, fmt):
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.write(b"head")
        f.seek(5 << 20)
        f.write(b"tail")
        f.truncate(8 << 20)
    blob = subprocess.run(["tar", "-c", "--sparse", f"--format={fmt}", "-C", str(src), "sparse"],
                          check=True, capture_output=True).stdout
    dest, stats = unpack(tmp_path, blob)
    data = (dest / "sparse").read_bytes()
    assert len(data) == 8 << 20 and data[:4] == b"head" and data[5 << 20:(5 << 20) + 4] == b"tail"
    assert data.count(0) == (8 << 20) - 8
    assert stats.diff_id == "sha256:" + hashlib.sha256(blob).hexdigest()
