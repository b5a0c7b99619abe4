"""The overlay snapshotter against the real kernel: layers unpacked and committed by chain ID,
an active snapshot on top mounted with overlayfs, the merged view checked, written, removed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

import pytest

from orlop.snapshots import (
    ACTIVE,
    COMMITTED,
    VIEW,
    Mount,
    OverlaySnapshotter,
    SnapshotExists,
    SnapshotNotFound,
    SnapshotStateError,
    chain_id,
    chain_ids,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (overlayfs mounts, whiteout devices)")


def layer(*entries: tuple[str, bytes | None]) -> bytes:
    """A layer tar: (name, data) is a file, (name/, None) a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in entries:
            ti = tarfile.TarInfo(name)
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


LAYERS = [
    layer(("etc/", None), ("etc/motd", b"welcome\n"), ("etc/passwd", b"root:x:0:0\n"),
          ("app/", None), ("app/old.py", b"old"), ("app/lib/", None), ("app/lib/util.py", b"util")),
    layer(("etc/", None), ("etc/.wh.motd", b""), ("etc/hosts", b"127.0.0.1 localhost\n")),
    layer(("app/", None), ("app/.wh..wh..opq", b""), ("app/new.py", b"new")),
]


def diff_id(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def merged(path: str) -> dict[str, str]:
    out = {}
    for d, _dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(d, f)
            with open(p) as fh:
                out[os.path.relpath(p, path)] = fh.read()
    return out


def test_chain_id_follows_the_image_spec():
    a, b, c = (diff_id(x) for x in (b"a", b"b", b"c"))
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert chain_ids([a, b, c]) == [a, ab, abc] and chain_id([a]) == a and chain_id([a, b, c]) == abc
    with pytest.raises(ValueError, match="not a sha256 digest"):
        chain_id(["md5:xyz"])


def test_three_layers_active_snapshot_mounted_written_and_removed(tmp_path):
    sn = OverlaySnapshotter(str(tmp_path / "snap"))
    parent = None
    expected_chain = chain_ids([diff_id(b) for b in LAYERS])
    for i, blob in enumerate(LAYERS):
        name, stats = sn.apply_layer(io.BytesIO(blob), parent, diff_id=diff_id(blob))
        assert name == expected_chain[i] and stats is not None and stats.diff_id == diff_id(blob)
        info = sn.stat(name)
        assert (info.kind, info.parent) == (COMMITTED, parent)
        parent = name
    # already committed: nothing is read
    assert sn.apply_layer(io.BytesIO(b""), expected_chain[0], diff_id=diff_id(LAYERS[1])) == (expected_chain[1], None)
    assert sn.usage(expected_chain[0]).inodes == 7

    mounts = sn.prepare("container-1", parent)
    assert len(mounts) == 1 and mounts[0].type == "overlay"
    options = mounts[0].options
    lower = next(o for o in options if o.startswith("lowerdir=")).split("=", 1)[1].split(":")
    assert len(lower) == 3 and lower[0].endswith("/fs"), "top layer first"
    assert any(o.startswith("upperdir=") for o in options) and any(o.startswith("workdir=") for o in options)

    target = tmp_path / "rootfs"
    target.mkdir()
    mounts[0].mount(str(target))
    try:
        assert merged(str(target)) == {
            "etc/passwd": "root:x:0:0\n",
            "etc/hosts": "127.0.0.1 localhost\n",     # motd deleted by layer 2's whiteout
            "app/new.py": "new",                       # layer 3 made app/ opaque: old.py, lib/ hidden
        }
        assert not os.path.lexists(target / "etc/motd")
        assert sorted(os.listdir(target / "app")) == ["new.py"]
        (target / "etc/passwd").write_text("root:x:0:0\nuser:x:1000:1000\n")
        (target / "scratch").write_text("written in the container")
        os.unlink(target / "app/new.py")
    finally:
        Mount.unmount(str(target))
    assert os.listdir(target) == []
    upper = sn.upper_path("container-1")
    assert open(os.path.join(upper, "scratch")).read() == "written in the container"
    assert os.lstat(os.path.join(upper, "app/new.py")).st_rdev == 0, "deletion recorded as a whiteout"
    assert sn.usage("container-1").inodes >= 4

    # the committed layers are untouched
    view = sn.view("check", parent)
    view[0].mount(str(target))
    try:
        assert merged(str(target))["etc/passwd"] == "root:x:0:0\n"
        with pytest.raises(OSError):
            (target / "nope").write_text("read-only")
    finally:
        Mount.unmount(str(target))

    with pytest.raises(SnapshotStateError, match="are based on it"):
        sn.remove(expected_chain[0])
    for key in ("container-1", "check", *reversed(expected_chain)):
        sn.remove(key)
    assert list(sn.walk()) == [] and os.listdir(tmp_path / "snap/snapshots") == []


def test_mounts_for_base_snapshot_views_and_errors(tmp_path):
    sn = OverlaySnapshotter(str(tmp_path / "snap"))
    mounts = sn.prepare("base", None)
    assert mounts[0].type == "bind" and mounts[0].options == ["rw", "rbind"]
    with open(os.path.join(mounts[0].source, "f"), "w") as f:
        f.write("x")
    with pytest.raises(SnapshotExists):
        sn.prepare("base", None)
    with pytest.raises(SnapshotStateError, match="only a committed snapshot can be a parent"):
        sn.prepare("child", "base")
    sn.commit("layer", "base", labels={"a": "b"})
    with pytest.raises(SnapshotNotFound):
        sn.stat("base")
    assert sn.stat("layer").labels == {"a": "b"}
    with pytest.raises(SnapshotStateError, match="committed"):
        sn.mounts("layer")
    assert sn.view("v", "layer") == [Mount("bind", mounts[0].source, ["ro", "rbind"])]
    assert sn.stat("v").kind == VIEW and sn.prepare("a", "layer")[0].type == "overlay"
    assert sn.stat("a").kind == ACTIVE and sn.mounts("a") == sn.mounts("a")
    with pytest.raises(SnapshotStateError, match="it is view, not active"):
        sn.commit("x", "v")

    target = tmp_path / "t"
    target.mkdir()
    view = sn.view("v2", "layer")[0]
    view.mount(str(target))
    try:
        assert (target / "f").read_text() == "x"
        with pytest.raises(OSError):
            (target / "g").write_text("ro")
    finally:
        Mount.unmount(str(target))


def test_crash_leftovers_are_cleaned_and_metadata_stays_consistent(tmp_path):
    root = tmp_path / "snap"
    sn = OverlaySnapshotter(str(root))
    sn.prepare("a", None)
    sn.commit("layer", "a")
    # a crash during prepare (dir renamed, metadata never written) and during remove
    os.makedirs(root / "snapshots" / "2" / "fs")
    os.makedirs(root / "snapshots" / "new-abc" / "fs")
    os.makedirs(root / "snapshots" / "rm-7" / "fs")
    meta = json.loads((root / "metadata.json").read_text())
    assert list(meta["snapshots"]) == ["layer"] and meta["snapshots"]["layer"]["kind"] == COMMITTED
    # the next prepare does not trip over the orphan
    sn.prepare("b", "layer")
    assert sn.stat("b").parent == "layer"
    removed = sn.cleanup()
    assert sorted(os.path.basename(p) for p in removed) == ["2", "new-abc", "rm-7"]
    assert sorted(os.listdir(root / "snapshots")) == sorted(
        v["id"] for v in json.loads((root / "metadata.json").read_text())["snapshots"].values())


def test_many_layers_mount_past_the_page_size_limit(tmp_path):
    sn = OverlaySnapshotter(str(tmp_path / "a-rather-long-snapshotter-root-directory-name" / "snap"))
    parent = None
    for i in range(120):
        key = f"layer-{i}"
        sn.prepare(f"tmp-{i}", parent)
        with open(os.path.join(sn.upper_path(f"tmp-{i}"), f"f{i}"), "w") as f:
            f.write(str(i))
        sn.commit(key, f"tmp-{i}")
        parent = key
    mounts = sn.prepare("top", parent)
    assert len(",".join(mounts[0].options)) > 4096
    target = tmp_path / "t"
    target.mkdir()
    mounts[0].mount(str(target))
    try:
        assert len(os.listdir(target)) == 120 and (target / "f0").read_text() == "0"
    finally:
        Mount.unmount(str(target))
