"""`docker import` without a daemon: the --change instructions as dockerd applies them, and a
rootfs tar (plain or compressed) made into a one-layer image."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import tarfile

import pytest

from orlop.images import archive, importer
from orlop.images.archive_format import ArchiveError
from orlop.images.changes import ChangeError, apply_changes
from orlop.images.content import ContentStore
from orlop.images.store import ImageStore


def test_changes_as_dockerd_applies_them():
    config = apply_changes({}, [
        'CMD ["sh"]', "ENV A=1 B=\"x y\" C=$A", "ENV D ${A:-z} two", "ENV E=${NOPE:-dflt} F=${A:+set}",
        'LABEL a.b=c "k k"=v', "EXPOSE 80 53/udp 8000-8001", "WORKDIR app", "WORKDIR $A", "USER nobody",
        'VOLUME ["/data"]', "VOLUME /x /y", "STOPSIGNAL SIGQUIT", "ONBUILD RUN echo",
        "HEALTHCHECK --interval=1m30s --retries=3 CMD wget -q localhost", "ENTRYPOINT echo 'hi there'",
        "# a comment", ""])
    assert config == {
        "Cmd": ["sh"],
        "Env": ["A=1", "B=x y", "C=", "D=1 two", "E=dflt", "F=set"],
        "Labels": {"a.b": "c", "k k": "v"},
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}},
        "WorkingDir": "/app/1", "User": "nobody", "Volumes": {"/data": {}, "/x": {}, "/y": {}},
        "StopSignal": "SIGQUIT", "OnBuild": ["RUN echo"],
        "Healthcheck": {"Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 90_000_000_000, "Retries": 3},
        "Entrypoint": ["/bin/sh", "-c", "echo 'hi there'"],
    }


def test_entrypoint_resets_an_inherited_cmd_but_not_one_set_here():
    assert apply_changes({"Cmd": ["old"]}, ["ENTRYPOINT [\"x\"]"]) == {"Entrypoint": ["x"]}
    assert apply_changes({}, ["CMD y", "ENTRYPOINT [\"x\"]"])["Cmd"] == ["/bin/sh", "-c", "y"]
    assert apply_changes({"Env": ["A=1"]}, ["ENV A=2"])["Env"] == ["A=2"]
    assert apply_changes({}, ["HEALTHCHECK NONE"])["Healthcheck"] == {"Test": ["NONE"]}
    assert apply_changes({}, ['HEALTHCHECK CMD ["true"]'])["Healthcheck"] == {"Test": ["CMD", "true"]}


@pytest.mark.parametrize("change, message", [
    ("RUN echo", "run is not a valid change command"), ("FROM busybox", "from is not a valid change command"),
    ("CMD", "requires at least one argument"), ("ENV A", "must have two arguments"),
    ("ENV A=1 B", "can't find ="), ("EXPOSE abc", "Invalid containerPort"),
    ("EXPOSE 90-80", "Invalid range"), ("STOPSIGNAL SIGNOPE", "Invalid signal"),
    ("HEALTHCHECK --interval=1x CMD true", "invalid duration"), ("HEALTHCHECK WHAT true", "try CMD"),
    ("HEALTHCHECK --bogus=1 CMD true", "Unknown flag"), ("ONBUILD FROM x", "isn't allowed"),
    ("ENV A=\"unterminated", "matching"),
])
def test_bad_changes(change, message):
    with pytest.raises(ChangeError, match=message):
        apply_changes({}, [change])


def rootfs_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in {"bin/sh": b"#!fake\n", "etc/hostname": b"x\n"}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("compress", [lambda d: d, gzip.compress, bz2.compress])
def test_import_makes_a_one_layer_image(tmp_path, compress):
    content, images = ContentStore(str(tmp_path / "c")), ImageStore(str(tmp_path / "i"))
    tar = rootfs_tar()
    record = importer.import_rootfs(io.BytesIO(compress(tar)), content, images, name="docker.io/library/imp:1",
                                    changes=['CMD ["sh"]', "ENV A=1"], message="Imported from -")
    config = json.loads(content.read(record.config))
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
    assert config["rootfs"] == {"type": "layers", "diff_ids": [diff_id]}
    assert config["config"] == {"Cmd": ["sh"], "Env": ["A=1"]}
    assert config["comment"] == "Imported from -" and config["history"][0]["comment"] == "Imported from -"
    assert config["os"] == "linux" and config["created"].endswith("Z")
    manifest = json.loads(content.read(record.manifest))
    assert manifest["layers"] == [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff_id,
                                   "size": len(tar)}]
    assert content.read(diff_id) == tar
    assert [r.name for r in images.list()] == ["docker.io/library/imp:1"]
    # it saves and loads like any image
    archive.save([(record, [record.name])], content, str(tmp_path / "imp.tar"))
    content2, images2 = ContentStore(str(tmp_path / "c2")), ImageStore(str(tmp_path / "i2"))
    assert [e.name for e in archive.load(str(tmp_path / "imp.tar"), content2, images2)] == [record.name]


def test_import_without_a_name_is_dangling_and_errors_name_nothing(tmp_path):
    content, images = ContentStore(str(tmp_path / "c")), ImageStore(str(tmp_path / "i"))
    record = importer.import_rootfs(io.BytesIO(rootfs_tar()), content, images)
    assert record.dangling and [r.name for r in images.list()] == [record.config]
    with pytest.raises(ChangeError):
        importer.import_rootfs(io.BytesIO(rootfs_tar()), content, images, name="docker.io/library/x:1",
                               changes=["RUN rm -rf /"])
    with pytest.raises(ArchiveError, match="empty"):
        importer.import_rootfs(io.BytesIO(b""), content, images, name="docker.io/library/x:1")
    with pytest.raises(ArchiveError, match="gzip"):
        importer.import_rootfs(io.BytesIO(gzip.compress(rootfs_tar())[:-20]), content, images,
                               name="docker.io/library/x:1")
    assert [r.name for r in images.list()] == [record.config]
