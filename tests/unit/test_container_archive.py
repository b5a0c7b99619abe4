"""docker cp's pure parts: Go's FileMode bits and times, paths read as dockerd reads them,
PathStat, the tar of a path, and the extractor's merge and breakout rules (on a plain
directory tree, as the daemon runs them chrooted into a container)."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import tarfile

import pytest

from orlop import untar
from orlop.containers import archive
from orlop.errors import InvalidParameter


def test_go_file_mode_bits():
    assert archive.go_file_mode(stat.S_IFDIR | 0o755) == (1 << 31) | 0o755
    assert archive.go_file_mode(stat.S_IFREG | 0o4755) == (1 << 23) | 0o755
    assert archive.go_file_mode(stat.S_IFLNK | 0o777) == (1 << 27) | 0o777
    assert archive.go_file_mode(stat.S_IFCHR | 0o666) == (1 << 26) | (1 << 21) | 0o666
    assert archive.go_file_mode(stat.S_IFDIR | 0o1777) == (1 << 31) | (1 << 20) | 0o777


def test_go_time_and_base():
    assert archive.go_time(0) == "1970-01-01T00:00:00Z"
    assert archive.go_time(1_500_000_000_120_000_000) == "2017-07-14T02:40:00.12Z"
    assert [archive.go_base(p) for p in ("/a/b", "/a/b/", "/", "/a/.")] == ["b", "b", "/", "."]


def test_container_path_is_cleaned_lexically_keeping_a_trailing_slash_or_dot():
    assert archive.container_path("etc/../bin/sh") == "/bin/sh"
    assert archive.container_path("/../../etc") == "/etc"
    assert archive.container_path("/etc/") == "/etc/"
    assert archive.container_path("/etc/.") == "/etc/."
    assert archive.container_path("/") == "/"


def test_path_stat_and_its_header(tmp_path):
    (tmp_path / "f").write_bytes(b"12345")
    os.chmod(tmp_path / "f", 0o640)
    os.symlink("f", tmp_path / "link")
    found = archive.path_stat(str(tmp_path / "f"))
    assert (found["name"], found["size"], found["mode"], found["linkTarget"]) == ("f", 5, 0o640, "")
    link = archive.path_stat(str(tmp_path / "link"))
    assert link["mode"] & (1 << 27) and link["linkTarget"] == str(tmp_path / "f")
    assert json.loads(base64.b64decode(archive.stat_header(found))) == found
    with pytest.raises(FileNotFoundError):
        archive.path_stat(str(tmp_path / "missing"))


def test_the_tar_of_a_path_is_named_after_it(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "x").write_text("x")
    os.link(tmp_path / "d" / "sub" / "x", tmp_path / "d" / "hard")
    out = io.BytesIO()
    archive.write_path(str(tmp_path / "d") + "/", out)
    members = {m.name: m for m in tarfile.open(fileobj=io.BytesIO(out.getvalue()))}
    assert list(members) == ["d", "d/hard", "d/sub", "d/sub/x"]
    assert members["d/sub/x"].islnk() and members["d/sub/x"].linkname == "d/hard"
    assert members["d"].uname == "" and members["d"].isdir()


def _tar(*entries) -> io.BytesIO:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = 0o751 if kind == tarfile.DIRTYPE else 0o604
            if kind == tarfile.REGTYPE:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                info.linkname = payload or ""
                tar.addfile(info)
    data.seek(0)
    return data


def test_untar_merges_into_a_directory_keeping_modes(tmp_path):
    (tmp_path / "keep").write_text("kept")
    (tmp_path / "a").mkdir()
    untar.untar(_tar(("a", tarfile.DIRTYPE, None), ("a/b/c", tarfile.REGTYPE, b"deep"),
                     ("l", tarfile.SYMTYPE, "a/b/c"), ("h", tarfile.LNKTYPE, "a/b/c")), str(tmp_path))
    assert (tmp_path / "keep").read_text() == "kept"
    assert (tmp_path / "a" / "b" / "c").read_bytes() == b"deep"
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o751
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "b").st_mode) == 0o755     # made for the entry
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "b" / "c").st_mode) == 0o604
    assert os.readlink(tmp_path / "l") == "a/b/c"
    assert os.stat(tmp_path / "h").st_ino == os.stat(tmp_path / "a" / "b" / "c").st_ino


def test_untar_refuses_to_leave_the_directory(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    for entries in ([("../escape", tarfile.REGTYPE, b"x")],
                    [("l", tarfile.SYMTYPE, "../../etc")],
                    [("h", tarfile.LNKTYPE, "../outside")]):
        with pytest.raises(untar.UntarError):
            untar.untar(_tar(*entries), str(dest))
    # nor can it write through a symlink, whether the archive made it or it was there
    os.symlink(str(tmp_path), dest / "up")
    with pytest.raises(untar.UntarError):
        untar.untar(_tar(("up/planted", tarfile.REGTYPE, b"x")), str(dest))
    assert not (tmp_path / "planted").exists() and not (tmp_path / "escape").exists()


def test_untar_no_overwrite_dir_non_dir(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("f")
    with pytest.raises(untar.UntarError, match="cannot overwrite directory"):
        untar.untar(_tar(("d", tarfile.REGTYPE, b"x")), str(tmp_path), no_overwrite_dir_non_dir=True)
    with pytest.raises(untar.UntarError, match="cannot overwrite non-directory"):
        untar.untar(_tar(("f", tarfile.DIRTYPE, None)), str(tmp_path), no_overwrite_dir_non_dir=True)
    untar.untar(_tar(("f", tarfile.DIRTYPE, None)), str(tmp_path))           # replaced without the option
    assert (tmp_path / "f").is_dir()


def test_extraction_dir_and_user_ids(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidParameter, match="extraction point is not a directory"):
        archive.extraction_dir(str(tmp_path / "file"))
    with pytest.raises(FileNotFoundError):
        archive.extraction_dir(str(tmp_path / "missing"))
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    monkeypatch.setattr(archive, "_colon_file", lambda path: [
        line.split(":") for line in (tmp_path / path.lstrip("/")).read_text().splitlines()])
    assert archive.user_ids("") == (0, 0)
    assert archive.user_ids("app") == (1000, 1001)
    assert archive.user_ids("app:staff") == (1000, 50)
    assert archive.user_ids("4242:7") == (4242, 7)
    with pytest.raises(InvalidParameter):
        archive.user_ids("ghost")
