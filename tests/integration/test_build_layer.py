"""A build step's upper directory as a layer tar: overlay whiteouts back to OCI ones,
hard links kept, the same tar (and diff ID) for the same changes."""

from __future__ import annotations

import io
import os
import tarfile

from conftest import needs_root

from orlop.build.layer import store_layer, write_tar
from orlop.images.content import ContentStore

pytestmark = [needs_root]


def make_upper(path) -> str:
    upper = str(path)
    os.makedirs(os.path.join(upper, "etc", "conf.d"))
    with open(os.path.join(upper, "etc", "app.conf"), "w") as f:
        f.write("x=1\n")
    os.link(os.path.join(upper, "etc", "app.conf"), os.path.join(upper, "etc", "hard.conf"))
    os.symlink("app.conf", os.path.join(upper, "etc", "link.conf"))
    os.mknod(os.path.join(upper, "etc", "removed"), 0o020000 | 0o600, os.makedev(0, 0))
    os.setxattr(os.path.join(upper, "etc", "conf.d"), "trusted.overlay.opaque", b"y")
    return upper


def members(upper: str) -> dict[str, tarfile.TarInfo]:
    data = io.BytesIO()
    write_tar(upper, data)
    data.seek(0)
    return {m.name: m for m in tarfile.open(fileobj=data)}


def test_whiteouts_links_and_opaque_directories(tmp_path):
    found = members(make_upper(tmp_path / "upper"))
    assert "etc/.wh.removed" in found and "etc/removed" not in found
    assert "etc/conf.d/.wh..wh..opq" in found
    assert found["etc/link.conf"].issym() and found["etc/link.conf"].linkname == "app.conf"
    hard = [m for m in found.values() if m.islnk()]
    assert len(hard) == 1 and hard[0].linkname in ("etc/app.conf", "etc/hard.conf")
    assert not any("trusted.overlay" in k for m in found.values() for k in m.pax_headers)


def test_same_changes_same_diff_id(tmp_path):
    upper = make_upper(tmp_path / "upper")
    content = ContentStore(str(tmp_path / "content"))
    first, second = store_layer(upper, content), store_layer(upper, content)
    assert first.diff_id == second.diff_id and first.digest == second.digest
    assert content.exists(first.digest) and first.size == content.size(first.digest)
