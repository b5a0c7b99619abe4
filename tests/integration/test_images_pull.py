"""Pulling from Debian's docker-registry: images pushed by skopeo (a third-party
tool) land in orlop's content store verified, with or without basic auth."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os

import pytest
from image_archive import make_docker_archive
from registry_fixture import LocalRegistry

from orlop.images.content import ContentStore
from orlop.images.pull import pull
from orlop.images.reference import parse
from orlop.images.registry import RegistryError
from orlop.images.store import ImageStore


@pytest.fixture(scope="module")
def archive(tmp_path_factory, rootfs_template) -> str:
    return make_docker_archive(rootfs_template, str(tmp_path_factory.mktemp("img") / "bb.tar"), "busybox:test")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = LocalRegistry(str(tmp_path_factory.mktemp("registry")))
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    reg = LocalRegistry(str(tmp_path_factory.mktemp("auth-registry")), users={"alice": "s3cret"})
    yield reg
    reg.stop()


@pytest.fixture
def stores(tmp_path):
    return ContentStore(str(tmp_path / "content")), ImageStore(str(tmp_path / "images"))


def test_pull_from_local_registry(registry, archive, stores):
    digest = registry.push_archive(archive, "test/busybox:1")
    content, images = stores
    events = []
    record = asyncio.run(pull(parse(f"{registry.host}/test/busybox:1"), content, images, progress=events.append))
    assert record.target == digest
    manifest = json.loads(content.read(record.manifest))
    assert record.config == manifest["config"]["digest"]
    for blob in [manifest["config"], *manifest["layers"]]:
        path = content.path(blob["digest"])
        assert os.path.getsize(path) == blob["size"]
        assert "sha256:" + hashlib.sha256(open(path, "rb").read()).hexdigest() == blob["digest"]
    assert images.get(f"{registry.host}/test/busybox:1").config == record.config
    statuses = [e["status"] for e in events]
    assert "Pulling fs layer" in statuses and "Download complete" in statuses
    assert any(e.get("progressDetail", {}).get("current") for e in events)

    # A second pull (by digest this time) downloads nothing.
    events.clear()
    again = asyncio.run(pull(parse(f"{registry.host}/test/busybox@{digest}"), content, images,
                             progress=events.append))
    assert again.manifest == record.manifest
    assert "Downloading" not in [e["status"] for e in events]


def test_unknown_image_is_a_clear_error(registry, stores):
    with pytest.raises(RegistryError, match="not found"):
        asyncio.run(pull(parse(f"{registry.host}/test/nothing:here"), *stores))


def test_basic_auth(auth_registry, archive, stores):
    auth_registry.push_archive(archive, "private/busybox:1")
    ref = parse(f"{auth_registry.host}/private/busybox:1")
    with pytest.raises(RegistryError, match="requires a login"):
        asyncio.run(pull(ref, *stores))
    with pytest.raises(RegistryError, match="refused"):
        asyncio.run(pull(ref, *stores, credentials=("alice", "wrong")))
    record = asyncio.run(pull(ref, *stores, credentials=("alice", "s3cret")))
    assert stores[0].exists(record.config)


def test_concurrent_pulls_share_downloads(registry, archive, stores):
    registry.push_archive(archive, "test/busybox:2")
    content, images = stores
    ref = parse(f"{registry.host}/test/busybox:2")

    async def both():
        return await asyncio.gather(pull(ref, content, images), pull(ref, content, images))

    first, second = asyncio.run(both())
    assert first.manifest == second.manifest
    assert os.listdir(content.ingests) == [], "no ingest left behind"


def test_push_to_another_repository_and_registry(registry, auth_registry, archive, stores):
    from orlop.images.push import push

    registry.push_archive(archive, "test/busybox:3")
    content, images = stores
    record = asyncio.run(pull(parse(f"{registry.host}/test/busybox:3"), content, images))
    # Same registry, other repository: blobs are mounted, not uploaded.
    events = []
    digest = asyncio.run(push(record, parse(f"{registry.host}/copies/busybox:3"), content,
                              mount_from="test/busybox", progress=events.append))
    assert digest == record.manifest
    assert any(e["status"].startswith("Mounted from") for e in events)
    # A registry with basic auth, uploaded in 64 KiB chunks; then again: everything exists.
    ref = parse(f"{auth_registry.host}/pushed/busybox:1")
    asyncio.run(push(record, ref, content, credentials=("alice", "s3cret"), chunk_size=65536))
    events.clear()
    asyncio.run(push(record, ref, content, credentials=("alice", "s3cret"), progress=events.append))
    assert [e["status"] for e in events if "id" in e] == ["Layer already exists"] * 2
    # What skopeo sees there is our manifest.
    import subprocess

    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--creds", "alice:s3cret", "--format",
                          "{{.Digest}}", f"docker://{auth_registry.host}/pushed/busybox:1"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == record.manifest


def test_pull_unpack_and_run_a_multi_layer_image(registry, rootfs_template, tmp_path, runtime, container_id):
    """Three layers, the second deleting a file with a whiteout: pulled, unpacked into
    overlay snapshots, mounted as a container's rootfs and run by orlop-runtime."""
    import subprocess

    from busybox_bundle import default_config, write_config

    from orlop.images.unpack import unpack_image
    from orlop.snapshots import OverlaySnapshotter, mount_all

    archive = make_docker_archive(rootfs_template, str(tmp_path / "layers.tar"), "layers:1", extra_layers=[
        {"etc/motd": b"layer two\n", "bin/probe": None},
        {"etc/motd": b"layer three\n"},
    ])
    registry.push_archive(archive, "test/layers:1")
    content, images = ContentStore(str(tmp_path / "content")), ImageStore(str(tmp_path / "images"))
    record = asyncio.run(pull(parse(f"{registry.host}/test/layers:1"), content, images))
    snapshotter = OverlaySnapshotter(str(tmp_path / "snapshots"))
    events = []
    top = unpack_image(record, content, snapshotter, progress=events.append)
    assert [e["status"] for e in events].count("Pull complete") == 3
    extracted = [e for e in events if e["status"] == "Extracting"]
    assert extracted and extracted[-1]["progressDetail"]["current"] == extracted[-1]["progressDetail"]["total"]
    assert unpack_image(record, content, snapshotter) == top, "a second unpack reuses the snapshots"

    bundle = tmp_path / "bundle"
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True)
    mount_all(snapshotter.prepare("container-1", top), str(rootfs))
    try:
        config = default_config()
        config["root"]["readonly"] = False
        config["process"]["args"] = ["sh", "-c", "cat /etc/motd; test -e /bin/probe || echo probe-deleted; "
                                                 "echo written > /etc/new"]
        config["process"]["terminal"] = False
        write_config(str(bundle), config)
        out = runtime("run", "--bundle", str(bundle), container_id).stdout
        assert out.splitlines() == ["layer three", "probe-deleted"]
    finally:
        subprocess.run(["umount", str(rootfs)], check=True)
    upper = snapshotter.upper_path("container-1")
    assert open(os.path.join(upper, "etc", "new")).read() == "written\n", "writes land in the container's layer"
    snapshotter.remove("container-1")


def test_save_for_podman_and_load_from_podman(registry, archive, tmp_path, stores):
    """orlop's save is loaded by podman (and runs there); podman's save is loaded by orlop."""
    import shutil
    import subprocess

    from orlop.images.archive import load, save

    if not shutil.which("podman"):
        pytest.skip("podman is not installed")
    registry.push_archive(archive, "test/busybox:save")
    content, images = stores
    record = asyncio.run(pull(parse(f"{registry.host}/test/busybox:save"), content, images))
    saved = str(tmp_path / "saved.tar")
    save([(record, ["orlop-saved/busybox:1"])], content, saved)
    import tempfile

    runroot = tempfile.mkdtemp(prefix="pm-", dir="/tmp")  # podman wants a runroot under 50 characters
    podman = ["podman", "--root", str(tmp_path / "pm-storage"), "--runroot", runroot,
              "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
    try:
        done = subprocess.run([*podman, "load", "-i", saved], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        from conftest import ORLOP_RUNTIME

        out = subprocess.run([*podman, "--runtime", ORLOP_RUNTIME, "run", "--rm", "--network", "none", "--ulimit", "nofile=20000:20000",
                              "--ulimit", "nproc=32768:32768", "orlop-saved/busybox:1", "echo", "from-orlop-save"],
                             capture_output=True, text=True, check=True).stdout
        assert out == "from-orlop-save\n"
        theirs = str(tmp_path / "podman-saved.tar")
        subprocess.run([*podman, "save", "--format", "docker-archive", "-o", theirs, "orlop-saved/busybox:1"],
                       check=True, capture_output=True)
    finally:
        subprocess.run([*podman, "system", "reset", "-f"], capture_output=True)
        shutil.rmtree(runroot, ignore_errors=True)
    loaded = load(theirs, content, images)
    assert [entry.image_id for entry in loaded] == [record.config], "the same image ID after the round trip"
    assert images.get(loaded[0].name).config == record.config


def test_list_inspect_history_tag_remove_and_gc(registry, rootfs_template, tmp_path):
    from orlop.images.manage import (
        ImageInUse,
        garbage_collect,
        get_record,
        history,
        inspect,
        list_images,
        remove,
        tag,
    )
    from orlop.images.unpack import unpack_image
    from orlop.snapshots import OverlaySnapshotter

    archive = make_docker_archive(rootfs_template, str(tmp_path / "two.tar"), "two:1",
                                  extra_layers=[{"etc/motd": b"hi\n"}])
    registry.push_archive(archive, "test/two:1")
    content, images = ContentStore(str(tmp_path / "content")), ImageStore(str(tmp_path / "images"))
    snapshotter = OverlaySnapshotter(str(tmp_path / "snapshots"))
    record = asyncio.run(pull(parse(f"{registry.host}/test/two:1"), content, images))
    unpack_image(record, content, snapshotter)

    [listed] = list_images(images, content)
    assert listed["Id"] == record.config and listed["RepoTags"] == [record.name]
    details = inspect(record, images, content)
    assert details["Config"]["Cmd"] == ["sh"] and len(details["RootFS"]["Layers"]) == 2
    assert len(history(record, content)) == 2
    assert get_record(images, record.config[7:19]).name == record.name, "found by short image ID"

    tag(images, record.name, parse("mine/two:copy"))
    assert {r.name for r in images.list()} == {record.name, "docker.io/mine/two:copy"}
    with pytest.raises(ImageInUse, match="is using"):
        remove(images, record.name, used_by=lambda image_id: ["c0ffee" * 8])
    assert remove(images, record.name) == [f"Untagged: {record.name}"]

    assert garbage_collect(images, content, grace_seconds=0, snapshotter=snapshotter)["blobs"] == [], \
        "the other name still holds everything"
    events = remove(images, "docker.io/mine/two:copy")
    assert events[-1] == f"Deleted: {record.config}"
    result = garbage_collect(images, content, grace_seconds=0, snapshotter=snapshotter)
    assert len(result["blobs"]) == 4  # manifest, config, two layers
    assert len(result["snapshots"]) == 2
    assert list(content.walk()) == [] and list(snapshotter.walk()) == []
