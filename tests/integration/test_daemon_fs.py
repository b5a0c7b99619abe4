"""A container's files through the docker CLI and docker-py: `docker cp` both ways (modes,
symlinks, stopped containers, volumes, read-only roots, missing paths, symlinks that try
to leave the container), with nothing left mounted."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import tarfile
import time
import uuid

import pytest
from conftest import needs_root
from daemon_fixture import DOCKER, _mounts_under, running_daemon

pytestmark = [needs_root, pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI")]


@pytest.fixture(scope="module")
def daemon():
    with running_daemon() as d:
        yield d


def container_dir(daemon, name: str) -> str:
    cid = daemon.docker("inspect", "-f", "{{.Id}}", name).stdout.strip()
    return os.path.join(daemon.data_root, "containers", cid)


def make_tree(root) -> dict[str, tuple[int, bytes | str]]:
    """A tree with varied modes; returns {relative path: (mode, content or link target)}."""
    tree = root / "tree"
    tree.mkdir()
    (tree / "sub").mkdir()
    files = {"plain.txt": (0o644, b"plain\n"), "run.sh": (0o755, b"#!/bin/sh\necho run\n"),
             "secret": (0o600, b"s3cret\n"), "sub/deep.bin": (0o640, bytes(range(256)) * 40)}
    for name, (mode, data) in files.items():
        (tree / name).write_bytes(data)
        os.chmod(tree / name, mode)
    os.symlink("plain.txt", tree / "link")
    os.chmod(tree / "sub", 0o750)
    os.chmod(tree, 0o755)
    return {**files, "sub": (0o750, b""), "link": (0o777, "plain.txt")}


def check_tree(root: str, expected: dict) -> None:
    for name, (mode, content) in expected.items():
        path = os.path.join(root, name)
        st = os.lstat(path)
        if isinstance(content, str):
            assert stat.S_ISLNK(st.st_mode) and os.readlink(path) == content, name
        elif name == "sub":
            assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == mode, name
        else:
            assert stat.S_IMODE(st.st_mode) == mode, (name, oct(st.st_mode))
            with open(path, "rb") as f:
                assert f.read() == content, name


def test_cp_round_trip_into_a_running_container_keeps_modes_and_contents(daemon, tmp_path):
    expected = make_tree(tmp_path)
    daemon.docker("run", "-d", "--name", "rt", "busybox", "sleep", "1000")
    try:
        daemon.docker("cp", str(tmp_path / "tree"), "rt:/copied")      # /copied does not exist: it is the tree
        listing = daemon.docker("exec", "rt", "sh", "-c",
                                "cd /copied && stat -c '%n %a %F' sub plain.txt run.sh secret sub/deep.bin link"
                                " && readlink link && cat plain.txt").stdout.splitlines()
        assert listing[:6] == ["sub 750 directory", "plain.txt 644 regular file", "run.sh 755 regular file",
                               "secret 600 regular file", "sub/deep.bin 640 regular file",
                               "link 777 symbolic link"]
        assert listing[6:] == ["plain.txt", "plain"]
        assert daemon.docker("exec", "rt", "/copied/run.sh").stdout == "run\n"

        out = tmp_path / "out"
        out.mkdir()
        daemon.docker("cp", "rt:/copied", str(out))                     # into an existing directory
        check_tree(str(out / "copied"), expected)
        daemon.docker("cp", "rt:/copied/secret", str(out / "renamed"))  # a file to a new name
        assert (out / "renamed").read_bytes() == b"s3cret\n" and stat.S_IMODE(os.stat(out / "renamed").st_mode) == 0o600

        # docker cp - : a tar on stdout, its top entry named after the path
        tar = subprocess.run([DOCKER, "-H", daemon.host, "cp", "rt:/copied/sub", "-"], capture_output=True,
                             timeout=60, check=True).stdout
        names = tarfile.open(fileobj=io.BytesIO(tar)).getnames()
        assert names == ["sub", "sub/deep.bin"]
    finally:
        daemon.docker("rm", "-f", "rt")


def test_cp_into_a_stopped_container_then_start_it(daemon, tmp_path):
    (tmp_path / "greeting").write_text("hello from cp\n")
    daemon.docker("create", "--name", "later", "busybox", "cat", "/etc/greeting")
    try:
        daemon.docker("cp", str(tmp_path / "greeting"), "later:/etc/")
        assert _mounts_under(container_dir(daemon, "later")) == []   # mounted only while copying
        assert daemon.docker("start", "-a", "later").stdout == "hello from cp\n"
        # and out of the exited container
        daemon.docker("cp", "later:/etc/greeting", str(tmp_path / "back"))
        assert (tmp_path / "back").read_text() == "hello from cp\n"
        assert _mounts_under(container_dir(daemon, "later")) == []
    finally:
        daemon.docker("rm", "-f", "later")


def test_cp_into_a_volume_lands_in_the_volume(daemon, tmp_path):
    (tmp_path / "data.txt").write_text("in the volume\n")
    daemon.docker("run", "-d", "--name", "withvol", "-v", "cpvol:/data", "busybox", "sleep", "1000")
    daemon.docker("create", "--name", "stoppedvol", "-v", "cpvol2:/data", "busybox", "true")
    try:
        daemon.docker("cp", str(tmp_path / "data.txt"), "withvol:/data/")
        daemon.docker("cp", str(tmp_path / "data.txt"), "stoppedvol:/data/")
        for volume in ("cpvol", "cpvol2"):
            out = daemon.docker("run", "--rm", "-v", f"{volume}:/v", "busybox", "cat", "/v/data.txt").stdout
            assert out == "in the volume\n"
        # the container's own layer did not get it
        upper = json.loads(daemon.docker("inspect", "-f", "{{json .GraphDriver.Data}}", "withvol").stdout)["UpperDir"]
        assert not os.path.exists(os.path.join(upper, "data", "data.txt"))
    finally:
        daemon.docker("rm", "-f", "withvol", "stoppedvol")
        daemon.docker("volume", "rm", "cpvol", "cpvol2")


def test_cp_into_a_read_only_container_is_refused_but_its_volume_is_writable(daemon, tmp_path):
    (tmp_path / "f").write_text("x\n")
    daemon.docker("run", "-d", "--name", "ro", "--read-only", "-v", "rovol:/data", "-v", "rovol2:/ro:ro",
                  "busybox", "sleep", "1000")
    try:
        done = daemon.docker("cp", str(tmp_path / "f"), "ro:/tmp/", check=False)
        assert done.returncode == 1
        assert "Error response from daemon: container rootfs is marked read-only" in done.stderr
        done = daemon.docker("cp", str(tmp_path / "f"), "ro:/ro/", check=False)
        assert done.returncode == 1 and "mounted volume is marked read-only" in done.stderr
        daemon.docker("cp", str(tmp_path / "f"), "ro:/data/")
        assert daemon.docker("exec", "ro", "cat", "/data/f").stdout == "x\n"
    finally:
        daemon.docker("rm", "-f", "ro")
        daemon.docker("volume", "rm", "rovol", "rovol2")


def test_cp_of_a_missing_path_and_to_a_file_fail_as_docker(daemon, tmp_path):
    daemon.docker("run", "-d", "--name", "missing", "busybox", "sleep", "1000")
    try:
        done = daemon.docker("cp", "missing:/no/such/file", str(tmp_path), check=False)
        assert done.returncode == 1
        assert "Could not find the file /no/such/file in container missing" in done.stderr
        (tmp_path / "f").write_text("x\n")
        done = daemon.docker("cp", str(tmp_path / "f"), "missing:/no/such/dir/f", check=False)
        assert done.returncode == 1 and "Could not find the file /no/such/dir in container missing" in done.stderr
        done = daemon.docker("cp", str(tmp_path / "f"), "missing:/etc/passwd/", check=False)
        assert done.returncode == 1 and "no such directory" in done.stderr   # the CLI's own check
        client = daemon.client()
        try:
            with pytest.raises(Exception) as caught:
                client.containers.get("missing").put_archive("/etc/passwd", b"")
            assert caught.value.status_code == 400 and "extraction point is not a directory" in str(caught.value)
        finally:
            client.close()
        done = daemon.docker("cp", str(tmp_path), "missing:/etc/passwd", check=False)
        assert done.returncode == 1 and "cannot copy directory" in done.stderr
        done = daemon.docker("cp", str(tmp_path / "f"), "nosuchcontainer:/tmp", check=False)
        assert done.returncode == 1 and "No such container: nosuchcontainer" in done.stderr
    finally:
        daemon.docker("rm", "-f", "missing")


def test_symlinks_in_the_container_cannot_lead_to_the_hosts_files(daemon, tmp_path):
    marker = f"orlop-escape-{uuid.uuid4().hex[:8]}"
    daemon.docker("run", "-d", "--name", "esc", "busybox", "sleep", "1000")
    try:
        daemon.docker("exec", "esc", "sh", "-c", "ln -s /../../../etc /up && ln -s ../../../../../etc/os-release /rel")
        # reading through them: the container's /etc, never the host's
        daemon.docker("cp", "esc:/up/os-release", str(tmp_path / "via-abs"))
        daemon.docker("cp", "-L", "esc:/rel", str(tmp_path / "via-rel"))
        for name in ("via-abs", "via-rel"):
            assert "ID=orlop-busybox" in (tmp_path / name).read_text()
        # writing through them: into the container's /etc
        (tmp_path / marker).write_text("escaped?\n")
        daemon.docker("cp", str(tmp_path / marker), "esc:/up/")
        assert not os.path.exists(os.path.join("/etc", marker))
        assert daemon.docker("exec", "esc", "cat", f"/etc/{marker}").stdout == "escaped?\n"
        # a tar whose entries try to climb out is refused (docker-py sends it as is)
        evil = io.BytesIO()
        with tarfile.open(fileobj=evil, mode="w") as tar:
            info = tarfile.TarInfo("../../../../tmp/" + marker)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"bad"))
        client = daemon.client()
        try:
            with pytest.raises(Exception) as caught:
                client.containers.get("esc").put_archive("/tmp", evil.getvalue())
            assert "outside of" in str(caught.value)
        finally:
            client.close()
        assert not os.path.exists(os.path.join("/tmp", marker))
        # entries through the container's own links (as /var/run -> /run) follow them, as
        # Docker's do, and still only inside the container
        daemon.docker("exec", "esc", "sh", "-c", "mkdir /real && ln -s /real /linkdir")
        through = io.BytesIO()
        with tarfile.open(fileobj=through, mode="w") as tar:
            for name in ("linkdir/inside", f"up/{marker}-2"):
                info = tarfile.TarInfo(name)
                info.size = 3
                tar.addfile(info, io.BytesIO(b"ok\n"))
        client = daemon.client()
        try:
            assert client.containers.get("esc").put_archive("/", through.getvalue())
        finally:
            client.close()
        assert daemon.docker("exec", "esc", "cat", "/real/inside", f"/etc/{marker}-2").stdout == "ok\nok\n"
        assert daemon.docker("exec", "esc", "test", "-L", "/linkdir").returncode == 0
        assert not os.path.exists(os.path.join("/etc", f"{marker}-2"))
    finally:
        daemon.docker("rm", "-f", "esc")


def test_docker_py_archive_and_stat(daemon):
    client = daemon.client()
    container = client.containers.run("busybox", "sleep 1000", detach=True)
    try:
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            info = tarfile.TarInfo("hello.txt")
            info.size, info.mode = 6, 0o640
            tar.addfile(info, io.BytesIO(b"hello\n"))
        assert container.put_archive("/tmp", data.getvalue()) is True
        stream, stat_info = container.get_archive("/tmp/hello.txt")
        assert stat_info["name"] == "hello.txt" and stat_info["size"] == 6
        assert stat_info["mode"] == 0o640 and stat_info["linkTarget"] == ""
        member = tarfile.open(fileobj=io.BytesIO(b"".join(stream)))
        assert member.extractfile("hello.txt").read() == b"hello\n"
        _, dir_stat = container.get_archive("/tmp")
        assert dir_stat["mode"] & (1 << 31) and dir_stat["mode"] & 0o777 == 0o777  # os.ModeDir, 1777
        _, link_stat = container.get_archive("/bin/sh")
        assert link_stat["mode"] & (1 << 27) and link_stat["linkTarget"] == "/bin/busybox"
        with pytest.raises(Exception) as caught:
            container.get_archive("/nope")
        assert getattr(caught.value, "status_code", None) == 404
    finally:
        container.remove(force=True)
        client.close()


def test_nothing_is_left_mounted(daemon):
    daemon.docker("create", "--name", "idle", "busybox", "true")
    try:
        daemon.docker("cp", "idle:/etc/passwd", "-")
    finally:
        daemon.docker("rm", "-f", "idle")
    assert daemon.docker("ps", "-q").stdout == ""
    assert _mounts_under(daemon.data_root) == []


def test_docker_diff_shows_added_changed_and_deleted_files(daemon):
    daemon.docker("run", "--name", "differ", "-v", "/vol", "busybox", "sh", "-c",
                  "mkdir -p /new/dir && echo x > /new/dir/f && echo more >> /etc/passwd && rm /etc/group"
                  " && echo y > /vol/in-volume")
    try:
        lines = daemon.docker("diff", "differ").stdout.splitlines()
        assert lines == ["C /etc", "D /etc/group", "C /etc/passwd", "A /new", "A /new/dir", "A /new/dir/f",
                         "A /vol"], lines
        client = daemon.client()
        try:
            kinds = {c["Path"]: c["Kind"] for c in client.containers.get("differ").diff()}
        finally:
            client.close()
        assert kinds["/etc/passwd"] == 0 and kinds["/new"] == 1 and kinds["/etc/group"] == 2
        assert "/etc/hosts" not in kinds and "/proc" not in kinds   # orlop's own mount points
    finally:
        daemon.docker("rm", "-f", "-v", "differ")
    daemon.docker("create", "--name", "pristine", "busybox", "true")
    try:
        assert daemon.docker("diff", "pristine").stdout == ""
    finally:
        daemon.docker("rm", "pristine")


def test_docker_export_lists_the_containers_files(daemon, tmp_path):
    daemon.docker("run", "--name", "exp", "-v", "expvol:/data", "busybox", "sh", "-c",
                  "echo exported > /exported && echo no > /data/not-exported")
    try:
        listing = subprocess.run(f"{DOCKER} -H {daemon.host} export exp | tar t", shell=True, capture_output=True,
                                 text=True, timeout=60, check=True).stdout.split()
        for name in ("exported", "bin/", "bin/busybox", "bin/sh", "etc/os-release", "etc/passwd"):
            assert name in listing, name
        assert "data/not-exported" not in listing and not any(n.startswith("./") for n in listing)
        daemon.docker("export", "-o", str(tmp_path / "exp.tar"), "exp")
        with tarfile.open(tmp_path / "exp.tar") as tar:
            assert tar.extractfile("exported").read() == b"exported\n"
            assert tar.getmember("bin/sh").issym() and tar.getmember("bin/sh").linkname == "busybox"
            assert tar.getmember("tmp").mode == 0o1777
        assert _mounts_under(container_dir(daemon, "exp")) == []
    finally:
        daemon.docker("rm", "-f", "-v", "exp")
        daemon.docker("volume", "rm", "expvol")


def test_docker_commit_then_run_sees_the_change(daemon):
    daemon.docker("run", "--name", "tocommit", "busybox", "sh", "-c", "echo committed > /hello && rm /etc/group")
    try:
        image_id = daemon.docker("commit", "-m", "a message", "-a", "Ann Author <ann@example.com>",
                                 "-c", 'CMD ["cat", "/hello"]', "-c", "ENV FOO=bar", "tocommit",
                                 "committed:v1").stdout.strip()
        assert image_id.startswith("sha256:") and len(image_id) == 71
        assert daemon.docker("run", "--rm", "committed:v1").stdout == "committed\n"
        out = daemon.docker("run", "--rm", "committed:v1", "sh", "-c", "echo $FOO; ls /etc/group 2>&1; "
                            "cat /etc/os-release").stdout
        assert out.startswith("bar\nls: /etc/group: No such file or directory\n") and "ID=orlop-busybox" in out
        info = json.loads(daemon.docker("image", "inspect", "committed:v1").stdout)[0]
        assert info["Id"] == image_id and info["Author"] == "Ann Author <ann@example.com>"
        assert info["Config"]["Cmd"] == ["cat", "/hello"] and "FOO=bar" in info["Config"]["Env"]
        assert len(info["RootFS"]["Layers"]) == 3    # the image's two and the container's
        history = daemon.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}",
                                "committed:v1").stdout.splitlines()
        assert history[0] == "sh -c echo committed > /hello && rm /etc/group|a message"
        # the layer holds the change, not orlop's mount points
        base = json.loads(daemon.docker("image", "inspect", "busybox").stdout)[0]
        assert info["RootFS"]["Layers"][:2] == base["RootFS"]["Layers"]
    finally:
        daemon.docker("rm", "-f", "tocommit")
    daemon.docker("rmi", "committed:v1")


def test_commit_of_a_running_container_pauses_it_and_docker_py(daemon):
    client = daemon.client()
    container = client.containers.run("busybox", "sh -c 'echo live > /live; sleep 1000'", detach=True)
    try:
        for _ in range(100):
            if container.exec_run("cat /live").output == b"live\n":
                break
        image = container.commit(repository="pycommit", tag="1", message="from docker-py",
                                 changes=['LABEL made=by-commit', 'ENTRYPOINT ["cat"]'])
        container.reload()
        assert container.status == "running"
        events = daemon.docker("events", "--since", "1", "--until", str(int(time.time()) + 1), "--filter",
                               f"container={container.id}", "--format", "{{.Action}}").stdout.split()
        assert events[-3:] == ["pause", "unpause", "commit"]
        assert image.labels["made"] == "by-commit" and image.attrs["Config"]["Entrypoint"] == ["cat"]
        assert image.attrs["Config"].get("Cmd") is None      # ENTRYPOINT without CMD drops the old CMD
        assert client.containers.run(image.id, "/live", remove=True) == b"live\n"
        # nothing changed: no new layer, an empty_layer history entry
        untouched = client.containers.create("busybox", "true")
        try:
            same = untouched.commit()
            assert same.attrs["RootFS"]["Layers"] == client.images.get("busybox").attrs["RootFS"]["Layers"]
            assert same.tags == []
        finally:
            untouched.remove()
    finally:
        container.remove(force=True)
        client.close()


def test_system_df_and_its_verbose_form(daemon):
    daemon.docker("run", "--name", "dfuser", "-v", "dfvol:/data", "busybox", "sh", "-c",
                  "head -c 100000 /dev/zero > /data/blob && head -c 50000 /dev/zero > /layer-blob")
    try:
        client = daemon.client()
        try:
            usage = client.df()
        finally:
            client.close()
        images = {i["Id"]: i for i in usage["Images"]}
        busybox = json.loads(daemon.docker("image", "inspect", "busybox").stdout)[0]
        assert images[busybox["Id"]]["Containers"] >= 1 and images[busybox["Id"]]["Size"] == busybox["Size"]
        assert usage["LayersSize"] >= busybox["Size"] > 0
        volume = next(v for v in usage["Volumes"] if v["Name"] == "dfvol")
        assert volume["UsageData"] == {"Size": 100000, "RefCount": 1}
        container = next(c for c in usage["Containers"] if c["Names"] == ["/dfuser"])
        assert 50000 <= container["SizeRw"] < 60000 and container["SizeRootFs"] == container["SizeRw"] + busybox["Size"]
        assert usage["BuildCache"] == []

        rows = daemon.docker("system", "df", "--format", "{{.Type}}|{{.TotalCount}}|{{.Active}}").stdout.splitlines()
        counts = {row.split("|")[0]: row.split("|")[1:] for row in rows}
        image_ids = set(daemon.docker("images", "-q", "--no-trunc").stdout.split())
        assert counts["Images"][0] == str(len(image_ids)) and int(counts["Images"][1]) >= 1
        assert counts["Containers"] == [str(len(usage["Containers"])), "0"]
        assert int(counts["Local Volumes"][0]) >= 1 and counts["Build Cache"] == ["0", "0"]
        table = daemon.docker("system", "df").stdout
        assert table.splitlines()[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
        verbose = daemon.docker("system", "df", "-v").stdout
        assert "Images space usage:" in verbose and "Local Volumes space usage:" in verbose
        volume_row = next(line.split() for line in verbose.splitlines() if line.startswith("dfvol "))
        assert volume_row == ["dfvol", "1", "100kB"]
        container_row = next(line for line in verbose.splitlines() if line.rstrip().endswith("dfuser"))
        assert "50kB" in container_row or "51.2kB" in container_row
        only = json.loads(subprocess.run(["curl", "-s", "--unix-socket", daemon.socket,
                                          "http://x/v1.45/system/df?type=volume"], capture_output=True,
                                         check=True, timeout=30).stdout)
        assert only["Images"] is None and only["Containers"] is None and only["Volumes"]
    finally:
        daemon.docker("rm", "-f", "dfuser")
        daemon.docker("volume", "rm", "dfvol")


ORLOP = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".venv", "bin",
                     "orlop")


def orlop(daemon, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run([ORLOP, "-H", daemon.host, *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, **kw)
    if check and done.returncode != 0:
        raise AssertionError(f"orlop {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


def test_orlop_cp_both_ways_as_docker_does(daemon, tmp_path):
    expected = make_tree(tmp_path)
    daemon.docker("run", "-d", "--name", "ocp", "busybox", "sleep", "1000")
    try:
        orlop(daemon, "cp", str(tmp_path / "tree"), "ocp:/copied")                 # new name
        orlop(daemon, "container", "cp", str(tmp_path / "tree") + "/.", "ocp:/tmp")   # the content, into a dir
        listing = daemon.docker("exec", "ocp", "sh", "-c", "stat -c '%n %a' /copied/sub /copied/secret "
                                "/tmp/run.sh && readlink /tmp/link").stdout.split("\n")
        assert listing[:4] == ["/copied/sub 750", "/copied/secret 600", "/tmp/run.sh 755", "plain.txt"]
        out = tmp_path / "out"
        out.mkdir()
        orlop(daemon, "cp", "ocp:/copied", str(out))                                 # into an existing dir
        check_tree(str(out / "copied"), expected)
        orlop(daemon, "cp", "ocp:/copied/.", str(out / "contents"))                  # content to a new name
        check_tree(str(out / "contents"), expected)
        orlop(daemon, "cp", "-L", "ocp:/bin/sh", str(out / "shell"))                 # a symlink followed
        assert (out / "shell").stat().st_size > 100000 and not (out / "shell").is_symlink()
        orlop(daemon, "cp", "ocp:/bin/sh", str(out / "link"))                        # kept as a link
        assert os.readlink(out / "link") == "busybox"
        tar = subprocess.run([ORLOP, "-H", daemon.host, "cp", "ocp:/copied/sub", "-"], capture_output=True,
                             timeout=60, check=True).stdout
        assert tarfile.open(fileobj=io.BytesIO(tar)).getnames() == ["sub", "sub/deep.bin"]
        subprocess.run([ORLOP, "-H", daemon.host, "cp", "-", "ocp:/root"], input=tar, timeout=60, check=True)
        assert daemon.docker("exec", "ocp", "stat", "-c", "%s", "/root/sub/deep.bin").stdout == "10240\n"
        done = orlop(daemon, "cp", "ocp:/nope", str(out), check=False)
        assert done.returncode == 1 and "Error response from daemon: Could not find the file /nope in container ocp" \
            in done.stderr
        done = orlop(daemon, "cp", str(tmp_path / "tree"), "ocp:/etc/passwd", check=False)
        assert done.returncode == 1 and done.stderr.strip() == "cannot copy directory"
        done = orlop(daemon, "cp", "ocp:/a", "other:/b", check=False)
        assert done.returncode == 1 and "copying between containers is not supported" in done.stderr
    finally:
        daemon.docker("rm", "-f", "ocp")


def test_orlop_diff_export_commit_and_system_df(daemon, tmp_path):
    daemon.docker("run", "--name", "ofs", "-v", "ofsvol:/data", "busybox", "sh", "-c",
                  "echo hi > /added && rm /etc/group && echo v > /data/v")
    try:
        assert orlop(daemon, "diff", "ofs").stdout == daemon.docker("diff", "ofs").stdout
        assert orlop(daemon, "container", "diff", "ofs").stdout.splitlines()[:2] == ["A /added", "A /data"]
        orlop(daemon, "export", "-o", str(tmp_path / "o.tar"), "ofs")
        with tarfile.open(tmp_path / "o.tar") as tar:
            assert tar.extractfile("added").read() == b"hi\n" and "etc/group" not in tar.getnames()
        image_id = orlop(daemon, "commit", "-m", "by orlop", "-a", "me", "-c", "CMD [\"cat\", \"/added\"]", "ofs",
                         "ocommit:2").stdout.strip()
        assert image_id.startswith("sha256:")
        assert daemon.docker("run", "--rm", "ocommit:2").stdout == "hi\n"
        assert daemon.docker("image", "inspect", "-f", "{{.Author}}|{{.Id}}", "ocommit:2").stdout.strip() == \
            f"me|{image_id}"
        assert orlop(daemon, "system", "df").stdout == daemon.docker("system", "df").stdout
        mine = orlop(daemon, "system", "df", "-v").stdout
        theirs = daemon.docker("system", "df", "-v").stdout
        sections = lambda text: [line for line in text.splitlines() if not line.startswith(("busybox", "ocommit",  # noqa: E731
                                                                                            "<none>")) and "ago" not in line]
        assert sections(mine) == sections(theirs)
        assert "ofsvol        1         2B" in mine
    finally:
        daemon.docker("rm", "-f", "ofs")
        daemon.docker("volume", "rm", "ofsvol")
    daemon.docker("rmi", "ocommit:2")
