"""docker diff from an upper directory over lower layers, commit's config merge and
names, and the CLI's pure parts of cp and system df."""

from __future__ import annotations

import os

import pytest

from orlop.cli.commands import cp, disk_usage
from orlop.cli.errors import CommandError
from orlop.containers import changes
from orlop.containers.commit import image_name, merge
from orlop.errors import InvalidParameter

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts are character devices (mknod)")


def _layer(root, files: dict[str, str | None]) -> str:
    """{path: content, "dir/": None for a directory, "x!": a whiteout of x}"""
    for name, content in files.items():
        path = os.path.join(root, name.rstrip("/!"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if name.endswith("/"):
            os.makedirs(path, exist_ok=True)
        elif name.endswith("!"):
            os.mknod(path, 0o020000 | 0o600, os.makedev(0, 0))
        else:
            with open(path, "w") as f:
                f.write(content or "")
    return str(root)


@needs_root
def test_changes_against_stacked_layers(tmp_path):
    base = _layer(tmp_path / "base", {"etc/passwd": "root", "etc/group": "root", "bin/sh": "sh", "old/x": "x",
                                      "gone/y": "y"})
    top = _layer(tmp_path / "top", {"gone!": None, "etc/added-by-image": "i"})
    upper = _layer(tmp_path / "upper", {"etc/passwd": "root\nme", "etc/group!": None, "etc/hosts": "",
                                        "new/dir/f": "f", "gone/again": "back", "proc/": None})
    os.setxattr(os.path.join(upper, "gone"), "trusted.overlay.opaque", b"y")
    found = [(c["Kind"], c["Path"]) for c in changes.changes(upper, [top, base])]
    assert found == [(0, "/etc"), (2, "/etc/group"), (0, "/etc/passwd"),
                     (1, "/gone"), (1, "/gone/again"),   # the image's /gone was deleted by a higher layer
                     (1, "/new"), (1, "/new/dir"), (1, "/new/dir/f")]


@needs_root
def test_an_opaque_directory_replacing_the_images_is_a_deletion(tmp_path):
    base = _layer(tmp_path / "base", {"data/old": "o"})
    upper = _layer(tmp_path / "upper", {"data/new": "n"})
    os.setxattr(os.path.join(upper, "data"), "trusted.overlay.opaque", b"y")
    assert [(c["Kind"], c["Path"]) for c in changes.changes(upper, [base])] == [(2, "/data"), (1, "/data/new")]
    assert changes.lower_lstat([upper, base], "data/old") is None
    assert changes.lower_lstat([base], "data/old") is not None


def test_a_directory_only_holding_mount_points_is_not_a_change(tmp_path):
    base = _layer(tmp_path / "base", {"etc/passwd": "root"})
    upper = _layer(tmp_path / "upper", {"etc/hosts": "", "etc/resolv.conf": "", "dev/": None, "sys/": None})
    assert changes.changes(upper, [base]) == []
    os.chmod(os.path.join(upper, "etc"), 0o700)
    assert changes.changes(upper, [base]) == [{"Path": "/etc", "Kind": 0}]


def test_commit_merges_what_the_new_config_leaves_unset():
    container = {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "Entrypoint": None, "User": "app",
                 "ExposedPorts": {"80/tcp": {}}, "Labels": {"a": "1"}, "WorkingDir": "/srv",
                 "Volumes": {"/data": {}}, "StopSignal": "SIGINT"}
    merged = merge({"Env": ["A=2"], "Cmd": None, "Labels": {"b": "2"}, "ExposedPorts": {"443/tcp": {}}}, container)
    assert merged["Env"] == ["A=2", "PATH=/bin"] and merged["Cmd"] == ["sh"] and merged["User"] == "app"
    assert merged["Labels"] == {"a": "1", "b": "2"} and set(merged["ExposedPorts"]) == {"80/tcp", "443/tcp"}
    assert (merged["WorkingDir"], merged["StopSignal"], merged["Volumes"]) == ("/srv", "SIGINT", {"/data": {}})
    with_entrypoint = merge({"Entrypoint": ["cat"]}, container)
    assert with_entrypoint["Entrypoint"] == ["cat"] and with_entrypoint.get("Cmd") is None


def test_commit_names():
    assert image_name("", "v1") is None
    assert image_name("app", "") == "docker.io/library/app:latest"
    assert image_name("localhost:5000/app", "v2") == "localhost:5000/app:v2"
    with pytest.raises(InvalidParameter, match="digest"):
        image_name("app@sha256:" + "a" * 64, "")
    with pytest.raises(InvalidParameter):
        image_name("Bad Name", "")


def test_cp_arguments_and_copy_rules():
    assert cp.split_cp_arg("c1:/etc") == ("c1", "/etc")
    assert cp.split_cp_arg("/abs:path") == ("", "/abs:path")
    assert cp.split_cp_arg("./c1:x") == ("", "./c1:x")
    assert cp.split_dir_entry("/a/b/") == ("/a", "b") and cp.split_dir_entry("/a/b/.") == ("/a/b", ".")
    assert cp.rebase_name("/link/", "/target") == ("/target/", "link")
    src_dir, src_file = cp.CopyInfo("/src/tree", True, True), cp.CopyInfo("/src/f", True, False)
    assert cp.prepare(src_dir, cp.CopyInfo("/dst", True, True)) == ("/dst", "tree", "tree")
    assert cp.prepare(src_dir, cp.CopyInfo("/dst/new")) == ("/dst", "tree", "new")
    assert cp.prepare(src_file, cp.CopyInfo("/dst/file", True, False)) == ("/dst", "f", "file")
    with pytest.raises(CommandError, match="cannot copy directory"):
        cp.prepare(src_dir, cp.CopyInfo("/dst/file", True, False))
    with pytest.raises(CommandError, match="no such directory"):
        cp.prepare(src_file, cp.CopyInfo("/dst/missing/"))


def test_system_df_summary_rows():
    usage = {"LayersSize": 1000, "Images": [{"Size": 600, "SharedSize": 100, "Containers": 1},
                                            {"Size": 500, "SharedSize": 100, "Containers": 0}],
             "Containers": [{"State": "running", "SizeRw": 10}, {"State": "exited", "SizeRw": 30}],
             "Volumes": [{"UsageData": {"Size": 50, "RefCount": 0}}, {"UsageData": {"Size": 150, "RefCount": 2}}],
             "BuildCache": []}
    rows = {r["Type"]: r for r in disk_usage.summary_rows(usage)}
    assert rows["Images"] == {"Type": "Images", "TotalCount": "2", "Active": "1", "Size": "1kB",
                              "Reclaimable": "500B (50%)"}
    assert (rows["Containers"]["Active"], rows["Containers"]["Reclaimable"]) == ("1", "30B (75%)")
    assert (rows["Local Volumes"]["Size"], rows["Local Volumes"]["Reclaimable"]) == ("200B", "50B (25%)")
    assert rows["Build Cache"]["Reclaimable"] == "0B"
