"""Image archives without a daemon: save in Docker 25+'s format (docker-save archive and OCI
layout at once), load of docker-save archives (old and new), OCI layouts and compressed
archives, hostile archives refused with nothing named, dangling images."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import os
import sys
import tarfile

import pytest

from orlop.images import archive, manage
from orlop.images.archive_format import OCI_LAYER, OCI_LAYER_GZIP, ArchiveError, compact
from orlop.images.content import ContentStore
from orlop.images.reference import parse
from orlop.images.store import ImageRecord, ImageStore

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from image_archive import make_docker_archive  # noqa: E402

BUSYBOX = "docker.io/library/busybox:latest"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def add(tar: tarfile.TarFile, name: str, data: bytes = b"", **attrs) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if data else None)


@pytest.fixture
def stores(tmp_path):
    return ContentStore(str(tmp_path / "content")), ImageStore(str(tmp_path / "images"))


@pytest.fixture
def old_archive(tmp_path) -> str:
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "bin" / "hello").write_text("hi\n")
    return make_docker_archive(str(rootfs), str(tmp_path / "old.tar"), "busybox:latest",
                               extra_layers=[{"etc/os-release": b"ID=test\n", "bin/hello": None}])


def members(path: str) -> dict[str, bytes | None]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() if m.isreg() else None for m in tar}


# -- save ---------------------------------------------------------------------------------------

def test_save_writes_docker_25_format(stores, old_archive, tmp_path):
    content, images = stores
    archive.load(old_archive, content, images)
    record = images.get(BUSYBOX)
    manage.tag(images, BUSYBOX, parse("example.com/team/tool:1.0"))
    out = str(tmp_path / "new.tar")
    archive.save([(record, [BUSYBOX, "example.com/team/tool:1.0"])], content, out)
    files = members(out)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    names = [(d["annotations"]["io.containerd.image.name"], d["annotations"]["org.opencontainers.image.ref.name"])
             for d in index["manifests"]]
    assert names == [(BUSYBOX, "latest"), ("example.com/team/tool:1.0", "1.0")]
    manifest_digest = index["manifests"][0]["digest"]
    assert {d["digest"] for d in index["manifests"]} == {manifest_digest}
    assert manifest_digest == record.manifest, "a loaded image saves with the manifest it was loaded with"
    manifest = json.loads(files["blobs/sha256/" + manifest_digest[7:]])
    config = json.loads(files["blobs/sha256/" + record.config[7:]])
    assert [layer["digest"] for layer in manifest["layers"]] == config["rootfs"]["diff_ids"]
    assert all(layer["mediaType"] == OCI_LAYER for layer in manifest["layers"])
    for layer in manifest["layers"]:
        data = files["blobs/sha256/" + layer["digest"][7:]]
        assert sha(data) == layer["digest"] and len(data) == layer["size"]
    entries = json.loads(files["manifest.json"])
    assert entries == [{"Config": "blobs/sha256/" + record.config[7:],
                        "RepoTags": ["busybox:latest", "example.com/team/tool:1.0"],
                        "Layers": ["blobs/sha256/" + d[7:] for d in config["rootfs"]["diff_ids"]]}]
    assert set(json.loads(files["repositories"])) == {"busybox", "example.com/team/tool"}
    assert not [n for n in files if n.endswith(".tmp") or "/layer.tar" in n]


def test_save_stores_shared_layers_once_and_decompresses(stores, tmp_path):
    content, images = stores
    base, top = tar_bytes({"a": b"base"}), tar_bytes({"b": b"top"})
    base_gz = gzip.compress(base)
    records = []
    for layers in ([base], [base, top]):
        config = compact({"architecture": "amd64", "os": "linux",
                          "rootfs": {"type": "layers", "diff_ids": [sha(x) for x in layers]}})
        config_digest = content.put(config)
        # stored as a registry hands it out: gzip layers, Docker media types
        descriptors = [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "digest": content.put(gzip.compress(x) if x is not base else base_gz), "size": 1}
                       for x in layers]
        manifest = content.put(compact({"schemaVersion": 2, "config": {"digest": config_digest},
                                        "layers": descriptors}))
        records.append((ImageRecord(f"docker.io/library/img:{len(layers)}", manifest, manifest, config_digest),
                        [f"docker.io/library/img:{len(layers)}"]))
    out = str(tmp_path / "two.tar")
    archive.save(records, content, out)
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert names.count("blobs/sha256/" + sha(base)[7:]) == 1
        assert tar.extractfile("blobs/sha256/" + sha(top)[7:]).read() == top
    content2, images2 = ContentStore(str(tmp_path / "c2")), ImageStore(str(tmp_path / "i2"))
    loaded = archive.load(out, content2, images2)
    assert [entry.name for entry in loaded] == ["docker.io/library/img:1", "docker.io/library/img:2"]


def test_save_of_an_unnamed_image_and_a_layer_not_matching_its_diff_id(stores, old_archive, tmp_path):
    content, images = stores
    archive.load(old_archive, content, images)
    record = images.get(BUSYBOX)
    out = str(tmp_path / "id.tar")
    archive.save([(record, [])], content, out)
    files = members(out)
    assert json.loads(files["manifest.json"])[0]["RepoTags"] is None
    assert "annotations" not in json.loads(files["index.json"])["manifests"][0]
    assert "repositories" not in files
    config = json.loads(content.read(record.config))
    config["rootfs"]["diff_ids"][0] = sha(b"something else")
    bad = content.put(compact(config))
    with pytest.raises(ArchiveError):
        archive.save([(ImageRecord("x", record.target, record.manifest, bad), [])], content, str(tmp_path / "b.tar"))
    assert not os.path.exists(tmp_path / "b.tar") and not [n for n in os.listdir(tmp_path) if ".tmp" in n]


# -- load ---------------------------------------------------------------------------------------

def test_old_and_new_archives_load_the_same_image(stores, old_archive, tmp_path):
    content, images = stores
    [old] = archive.load(old_archive, content, images)
    assert old.name == BUSYBOX and old.replaced is None
    record = images.get(BUSYBOX)
    out = str(tmp_path / "new.tar")
    archive.save([(record, [BUSYBOX])], content, out)
    content2, images2 = ContentStore(str(tmp_path / "c2")), ImageStore(str(tmp_path / "i2"))
    [new] = archive.load(out, content2, images2)
    again = images2.get(BUSYBOX)
    assert (again.config, again.manifest) == (record.config, record.manifest)


@pytest.mark.parametrize("compress", [gzip.compress, lzma.compress, "zstd"])
def test_compressed_archives(stores, old_archive, tmp_path, compress):
    content, images = stores
    raw = open(old_archive, "rb").read()
    if compress == "zstd":
        zstandard = pytest.importorskip("zstandard")
        data = zstandard.ZstdCompressor().compress(raw)
    else:
        data = compress(raw)
    [loaded] = archive.load(io.BytesIO(data), content, images)
    assert loaded.name == BUSYBOX


def oci_layout(tmp_path, annotations: list[dict], *, nested: bool = False, extra: dict | None = None) -> str:
    """An oci-archive as skopeo writes it: gzip layers, names in annotations."""
    layer = tar_bytes({"hello": b"world"})
    layer_gz = gzip.compress(layer)
    config = compact({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                      "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}})
    manifest = compact({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config),
                                   "size": len(config)},
                        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha(layer_gz), "size": len(layer_gz)}]})
    blobs = {sha(x): x for x in (layer_gz, config, manifest)}
    top = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest), "size": len(manifest)}
    if nested:
        other = {**top, "digest": sha(b"missing"), "platform": {"os": "linux", "architecture": "s390x"}}
        index = compact({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                         "manifests": [other, {**top, "platform": {"os": "linux", "architecture": "amd64"}}]})
        blobs[sha(index)] = index
        top = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(index), "size": len(index)}
    path = str(tmp_path / f"oci-{len(os.listdir(tmp_path))}.tar")
    with tarfile.open(path, "w") as tar:
        add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        for digest, data in blobs.items():
            add(tar, "./blobs/sha256/" + digest[7:], data)
        add(tar, "index.json", compact({"schemaVersion": 2, "manifests": [
            {**top, "annotations": a} if a else top for a in annotations]}))
        for name, data in (extra or {}).items():
            add(tar, name, data)
    return path


def test_oci_layout_names(stores, tmp_path, monkeypatch):
    monkeypatch.setattr("orlop.images.archive_load.host_platform", lambda: {"os": "linux", "architecture": "amd64"})
    content, images = stores
    path = oci_layout(tmp_path, [{"io.containerd.image.name": "docker.io/library/app:1",
                                  "org.opencontainers.image.ref.name": "1"},
                                 {"org.opencontainers.image.ref.name": "localhost/team/app:2"},
                                 {"org.opencontainers.image.ref.name": "myimg:3"}], nested=True)
    loaded = archive.load(path, content, images)
    assert [entry.name for entry in loaded] == ["docker.io/library/app:1", "localhost/team/app:2",
                                                "docker.io/library/myimg:3"]
    record = images.get("localhost/team/app:2")
    assert record.target != record.manifest, "an index keeps its digest as the target"
    assert json.loads(content.read(record.config))["config"]["Cmd"] == ["sh"]


def test_oci_layout_with_only_a_tag_loads_a_dangling_image(stores, tmp_path):
    content, images = stores
    [loaded] = archive.load(oci_layout(tmp_path, [{"org.opencontainers.image.ref.name": "latest"}]), content, images)
    assert loaded.name is None
    [record] = images.list()
    assert record.dangling and record.name == loaded.image_id
    [listed] = manage.list_images(images, content)
    assert listed["RepoTags"] == [] and listed["RepoDigests"] == []
    manage.tag(images, record.name, parse("named:1"))
    assert [r.name for r in images.list()] == ["docker.io/library/named:1"]
    assert manage.remove(images, "docker.io/library/named:1") == ["Untagged: docker.io/library/named:1",
                                                                  f"Deleted: {loaded.image_id}"]


def test_a_moved_name_leaves_the_old_image_dangling(stores, old_archive, tmp_path):
    content, images = stores
    archive.load(old_archive, content, images)
    before = images.get(BUSYBOX).config
    [loaded] = archive.load(oci_layout(tmp_path, [{"io.containerd.image.name": BUSYBOX}]), content, images)
    assert loaded.replaced == before and loaded.name == BUSYBOX
    assert {r.name for r in images.list()} == {BUSYBOX, before}


def test_skopeo_style_symlinked_layers(stores, old_archive, tmp_path):
    """skopeo's docker-archive: layers as <diff id>.tar, with <v1 id>/layer.tar symlinks."""
    content, images = stores
    files = members(old_archive)
    [entry] = json.loads(files["manifest.json"])
    path = str(tmp_path / "skopeo.tar")
    with tarfile.open(path, "w") as tar:
        links = []
        for i, layer in enumerate(entry["Layers"]):
            add(tar, layer.replace("/layer.tar", ".tar"), files[layer])
            add(tar, f"v1-{i}/layer.tar", type=tarfile.SYMTYPE, linkname="../" + layer.replace("/layer.tar", ".tar"))
            links.append(f"v1-{i}/layer.tar")
        add(tar, entry["Config"], files[entry["Config"]])
        add(tar, "manifest.json", json.dumps([{**entry, "Layers": links}]).encode())
    [loaded] = archive.load(path, content, images)
    assert loaded.name == BUSYBOX


# -- hostile and broken archives: a clear error, nothing named ------------------------------------

def hostile(tmp_path, old_archive, extra) -> str:
    files = members(old_archive)
    path = str(tmp_path / "hostile.tar")
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            if name != "manifest.json":
                add(tar, name, data)
        manifest = json.loads(files["manifest.json"])
        extra(tar, manifest)
        add(tar, "manifest.json", json.dumps(manifest).encode())
    return path


HOSTILE = {
    "absolute member": (lambda tar, m: add(tar, "/etc/evil", b"x"), "absolute path"),
    "dot-dot member": (lambda tar, m: add(tar, "blobs/../../evil", b"x"), "'..'"),
    "symlink out": (lambda tar, m: (add(tar, "out", type=tarfile.SYMTYPE, linkname="../../etc/passwd"),
                                    m[0].update(Config="out")), "leads out of the archive"),
    "absolute symlink": (lambda tar, m: add(tar, "abs", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
                         "absolute path"),
    "hard link out": (lambda tar, m: add(tar, "hard", type=tarfile.LNKTYPE, linkname="../x"), "leads out"),
    "device": (lambda tar, m: add(tar, "dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3), "special file"),
    "dot-dot in manifest.json": (lambda tar, m: m[0]["Layers"].__setitem__(0, "../../etc/shadow"), "'..'"),
    "missing layer": (lambda tar, m: m[0]["Layers"].__setitem__(0, "nope/layer.tar"), "has no file"),
    "too few layers": (lambda tar, m: m[0]["Layers"].pop(), "diff IDs"),
    "wrong blob digest": (lambda tar, m: add(tar, "blobs/sha256/" + "0" * 64, b"not that"), "does not match"),
    "link loop": (lambda tar, m: (add(tar, "a", type=tarfile.SYMTYPE, linkname="b"),
                                  add(tar, "b", type=tarfile.SYMTYPE, linkname="a"),
                                  m[0].update(Config="a")), "too many levels"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_archives_are_refused_and_name_nothing(stores, old_archive, tmp_path, case):
    content, images = stores
    images.put(ImageRecord("docker.io/library/keep:1", sha(b"m"), sha(b"m"), sha(b"c")))
    extra, message = HOSTILE[case]
    with pytest.raises(ArchiveError, match=message):
        archive.load(hostile(tmp_path, old_archive, extra), content, images)
    assert [r.name for r in images.list()] == ["docker.io/library/keep:1"]


@pytest.mark.parametrize("data, message", [
    (b"", "empty|not a valid tar"), (b"not a tar at all" * 100, "not a valid tar|no manifest.json"),
    (gzip.compress(b"x" * 1000)[:-30], "truncated|corrupt|not a valid tar"),
    (tar_bytes({"hello": b"x"}), "no manifest.json, no index.json"),
    (tar_bytes({"repositories": b"{}"}), "pre-1.10"),
    (tar_bytes({"manifest.json": b"{not json"}), "not valid JSON"),
    (tar_bytes({"manifest.json": b'{"a": 1}'}), "malformed"),
])
def test_broken_archives(stores, data, message):
    content, images = stores
    with pytest.raises(ArchiveError, match=message):
        archive.load(io.BytesIO(data), content, images)
    assert images.list() == []


def test_files_beyond_the_memory_budget_go_to_the_store_and_members_are_bounded(stores, old_archive, monkeypatch):
    content, images = stores
    monkeypatch.setattr("orlop.images.archive_tar.IN_MEMORY", 0)
    [loaded] = archive.load(old_archive, content, images)
    assert loaded.name == BUSYBOX
    monkeypatch.setattr("orlop.images.archive_tar.MAX_MEMBERS", 2)
    with pytest.raises(ArchiveError, match="more than 2 members"):
        archive.load(old_archive, content, images)


def test_descriptor_with_a_foreign_digest(stores, tmp_path):
    content, images = stores
    path = str(tmp_path / "foreign.tar")
    with tarfile.open(path, "w") as tar:
        add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add(tar, "index.json", compact({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha512:" + "0" * 128,
             "size": 1}]}))
    with pytest.raises(ArchiveError, match="invalid digest"):
        archive.load(path, content, images)
