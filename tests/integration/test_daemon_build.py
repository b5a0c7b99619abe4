"""Image builds through orlopd's POST /build, with the docker CLI's classic builder
(DOCKER_BUILDKIT=0) and docker-py: every instruction's effect seen in a container of the
image, the layer cache (hits, same image ID, a changed file rebuilding from its step),
.dockerignore, multi-stage builds, build args, and a failing RUN leaving nothing behind."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile

import pytest
from conftest import needs_root
from daemon_fixture import DOCKER, running_daemon
from podman_fixture import PODMAN_ULIMITS, Podman

pytestmark = [needs_root, pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI")]

APP_DOCKERFILE = """\
# a comment
ARG BASE=busybox
FROM ${BASE}
ARG GREETING=hello
ENV APP_HOME=/srv/app \\
    MODE=test
WORKDIR $APP_HOME
COPY greeting.txt ./
COPY --chown=1000:1000 --chmod=640 data/ /data/
RUN echo "$GREETING from build" > built.txt && echo 'runner:x:1001:1001::/tmp:/bin/sh' >> /etc/passwd
LABEL org.example.team="orlop" version=1
EXPOSE 8080 53/udp
VOLUME /cache
STOPSIGNAL SIGUSR1
USER runner
HEALTHCHECK --interval=5s --retries=2 CMD true
ENTRYPOINT ["sh", "-c"]
CMD ["cat built.txt greeting.txt"]
"""


@pytest.fixture(scope="module")
def daemon():
    with running_daemon() as d:
        yield d


def write_context(path, files: dict[str, str]) -> str:
    for name, text in files.items():
        full = os.path.join(path, name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
    return str(path)


def build(daemon, context: str, *args: str, check: bool = True):
    env_args = ["build", *args, context]
    done = daemon.docker(*env_args, check=False, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"build failed: {done.stdout}\n{done.stderr}\n{daemon.log()}")
    return done


@pytest.fixture(autouse=True)
def legacy_builder(monkeypatch):
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")


def image_id(daemon, name: str) -> str:
    return daemon.docker("image", "inspect", "-f", "{{.Id}}", name).stdout.strip()


def test_every_instruction_shows_in_the_image(daemon, tmp_path):
    ctx = write_context(tmp_path, {"Dockerfile": APP_DOCKERFILE, "greeting.txt": "copied file\n",
                                   "data/a.txt": "A\n", "data/sub/b.txt": "B\n"})
    out = build(daemon, ctx, "-t", "app:1", "--build-arg", "GREETING=hi").stdout
    assert "Step 1/18 : ARG BASE=busybox" not in out  # meta ARGs are not steps
    assert "Successfully built" in out and "Successfully tagged app:1" in out
    run = daemon.docker("run", "--rm", "app:1").stdout
    assert run == "hi from build\ncopied file\n"
    info = json.loads(daemon.docker("image", "inspect", "app:1").stdout)[0]
    cfg = info["Config"]
    assert "APP_HOME=/srv/app" in cfg["Env"] and "MODE=test" in cfg["Env"]
    assert cfg["WorkingDir"] == "/srv/app" and cfg["User"] == "runner"
    assert cfg["Labels"] == {"org.example.team": "orlop", "version": "1"}
    assert set(cfg["ExposedPorts"]) == {"8080/tcp", "53/udp"} and set(cfg["Volumes"]) == {"/cache"}
    assert cfg["StopSignal"] == "SIGUSR1" and cfg["Entrypoint"] == ["sh", "-c"]
    assert cfg["Healthcheck"]["Test"] == ["CMD-SHELL", "true"] and cfg["Healthcheck"]["Retries"] == 2
    listing = daemon.docker("run", "--rm", "-u", "0", "--entrypoint", "sh", "app:1", "-c",
                            "stat -c '%u:%g %a %n' /data/a.txt /data/sub/b.txt; id -u").stdout
    assert "1000:1000 640 /data/a.txt" in listing and "1000:1000 640 /data/sub/b.txt" in listing
    assert daemon.docker("run", "--rm", "--entrypoint", "id", "app:1", "-u").stdout == "1001\n"
    history = daemon.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", "app:1").stdout
    assert "hi from build" not in history or "GREETING=hi" in history
    assert "COPY" in history and "RUN" in history or "echo" in history


def test_rebuild_uses_the_cache_and_a_change_rebuilds_from_its_step(daemon, tmp_path):
    dockerfile = ("FROM busybox\nRUN echo one > /one\nCOPY file.txt /file.txt\nRUN cat /file.txt > /copy\n"
                  "RUN echo three > /three\n")
    ctx = write_context(tmp_path, {"Dockerfile": dockerfile, "file.txt": "version 1\n"})
    build(daemon, ctx, "-t", "cached:1")
    first = image_id(daemon, "cached:1")
    again = build(daemon, ctx, "-t", "cached:1").stdout
    assert again.count("Using cache") == 4
    assert image_id(daemon, "cached:1") == first
    write_context(tmp_path, {"file.txt": "version 2\n"})
    changed = build(daemon, ctx, "-t", "cached:1").stdout
    assert changed.count("Using cache") == 1  # only the RUN before the COPY
    assert image_id(daemon, "cached:1") != first
    assert daemon.docker("run", "--rm", "cached:1", "cat", "/copy").stdout == "version 2\n"
    no_cache = build(daemon, ctx, "--no-cache", "-t", "cached:2").stdout
    assert "Using cache" not in no_cache


def test_dockerignore_with_exceptions(daemon, tmp_path):
    ctx = write_context(tmp_path, {
        "Dockerfile": "FROM busybox\nCOPY . /ctx\nRUN find /ctx -type f | sort\n",
        ".dockerignore": "# comment\n*.log\nsecret/\n!keep.log\ndocs/**/*.tmp\n",
        "a.txt": "a", "debug.log": "x", "keep.log": "k", "secret/key": "s", "docs/x/y.tmp": "t", "docs/x/z.md": "m"})
    build(daemon, ctx, "-t", "ignored:1")
    files = daemon.docker("run", "--rm", "ignored:1", "find", "/ctx", "-type", "f").stdout.split()
    assert sorted(files) == ["/ctx/Dockerfile", "/ctx/a.txt", "/ctx/docs/x/z.md", "/ctx/keep.log"] or \
        sorted(files) == ["/ctx/.dockerignore", "/ctx/Dockerfile", "/ctx/a.txt", "/ctx/docs/x/z.md", "/ctx/keep.log"]


def test_multi_stage_copy_from_and_target(daemon, tmp_path):
    dockerfile = ("FROM busybox AS builder\nRUN mkdir /out && echo artifact > /out/a\n"
                  "FROM busybox AS tester\nRUN echo testing > /t\n"
                  "FROM scratch\nCOPY --from=builder /out/a /a\nCOPY --from=busybox /bin/busybox /busybox\n"
                  'CMD ["/busybox", "cat", "/a"]\n')
    ctx = write_context(tmp_path, {"Dockerfile": dockerfile})
    build(daemon, ctx, "-t", "multi:1")
    assert daemon.docker("run", "--rm", "multi:1").stdout == "artifact\n"
    assert json.loads(daemon.docker("image", "inspect", "multi:1").stdout)[0]["RootFS"]["Layers"].__len__() == 2
    build(daemon, ctx, "--target", "tester", "-t", "multi:tester")
    assert daemon.docker("run", "--rm", "multi:tester", "cat", "/t").stdout == "testing\n"
    done = build(daemon, ctx, "--target", "nope", check=False)
    assert done.returncode != 0 and "nope" in done.stderr


def test_a_failing_run_reports_and_leaves_nothing(daemon, tmp_path):
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo before\nRUN echo failing && exit 3\n"})
    done = build(daemon, ctx, "-t", "broken:1", check=False)
    assert done.returncode != 0
    assert "The command '/bin/sh -c echo failing && exit 3' returned a non-zero code: 3" in done.stderr
    assert "failing" in done.stdout
    assert daemon.docker("images", "-q", "broken:1").stdout == ""
    mounts = open("/proc/self/mountinfo").read()
    assert "build-" not in mounts
    snapshots = json.load(open(os.path.join(daemon.data_root, "snapshots", "metadata.json"))) \
        if os.path.exists(os.path.join(daemon.data_root, "snapshots", "metadata.json")) else {"snapshots": {}}
    assert not [k for k in snapshots.get("snapshots", {}) if k.startswith("build-")]


def test_malformed_dockerfile_names_the_line(daemon, tmp_path):
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN true\nFROBNICATE now\n"})
    done = build(daemon, ctx, check=False)
    assert done.returncode != 0 and "FROBNICATE" in (done.stderr + done.stdout).upper()
    assert "3" in done.stderr + done.stdout


def test_docker_py_build(daemon):
    client = daemon.client()
    try:
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            data = b"FROM busybox\nARG WHO\nRUN echo built-by-$WHO > /who\n"
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        context.seek(0)
        image, logs = client.images.build(fileobj=context, custom_context=True, tag="pybuilt:1",
                                          buildargs={"WHO": "docker-py"})
        assert any("Successfully built" in entry.get("stream", "") for entry in logs)
        assert client.containers.run(image.id, "cat /who", remove=True) == b"built-by-docker-py\n"
    finally:
        client.close()


def test_orlop_cli_build(daemon, tmp_path):
    import subprocess

    orlop = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".venv",
                         "bin", "orlop")
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nARG X\nCOPY f /f\nRUN echo $X >> /f\n"
                                                 'CMD ["cat", "/f"]\n',
                                   "f": "from-context\n", "skip.me": "x", ".dockerignore": "skip.*\n"})
    done = subprocess.run([orlop, "-H", daemon.host, "build", "-t", "viacli:1", "--build-arg", "X=arg", ctx],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Successfully tagged viacli:1" in done.stdout
    assert daemon.docker("run", "--rm", "viacli:1").stdout == "from-context\narg\n"
    quiet = subprocess.run([orlop, "-H", daemon.host, "build", "-q", "-t", "viacli:1", "--build-arg", "X=arg", ctx],
                           capture_output=True, text=True, timeout=120)
    assert quiet.stdout.strip() == image_id(daemon, "viacli:1")
    write_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN exit 5\n"})
    failed = subprocess.run([orlop, "-H", daemon.host, "build", ctx], capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "returned a non-zero code: 5" in failed.stderr
    write_context(tmp_path, {"Dockerfile": "FROM busybox\nARG X\nCOPY f /f\nRUN echo $X >> /f\n"
                                           'CMD ["cat", "/f"]\n'})
    pruned = subprocess.run([orlop, "-H", daemon.host, "builder", "prune", "-f"], capture_output=True, text=True,
                            timeout=60)
    assert pruned.returncode == 0 and pruned.stdout.startswith("Deleted build cache objects:\n"), pruned.stdout
    again = subprocess.run([orlop, "-H", daemon.host, "build", "-t", "viacli:1", "--build-arg", "X=arg", ctx],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "Using cache" not in again.stdout  # the step cache was forgotten


def test_add_extracts_local_archives_and_downloads_urls(daemon, tmp_path):
    import subprocess
    import sys

    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = b"inside the archive\n"
        info = tarfile.TarInfo("pkg/readme.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (tmp_path / "pkg.tar.gz").write_bytes(archive.getvalue())
    served = tmp_path / "served"
    served.mkdir()
    (served / "remote.txt").write_text("downloaded\n")
    serve = ("import http.server, functools, sys\n"
             "h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])\n"
             "s = http.server.HTTPServer(('127.0.0.1', 0), h)\nprint(s.server_address[1], flush=True)\n"
             "s.serve_forever()\n")
    # the daemon lives in a network namespace of its own: the web server too
    server = subprocess.Popen(["nsenter", f"--net={daemon.netns_path}", "--", sys.executable, "-c", serve,
                               str(served)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(server.stdout.readline())
        ctx = write_context(tmp_path, {"Dockerfile": f"FROM busybox\nADD pkg.tar.gz /opt/\n"
                                                     f"ADD http://127.0.0.1:{port}/remote.txt /dl/\n"})
        build(daemon, ctx, "-t", "added:1")
        out = daemon.docker("run", "--rm", "added:1", "sh", "-c",
                            "cat /opt/pkg/readme.txt /dl/remote.txt; stat -c %a /dl/remote.txt").stdout
        assert out == "inside the archive\ndownloaded\n600\n"
    finally:
        server.kill()
        server.wait()


@pytest.mark.skipif(not shutil.which("podman"), reason="no podman")
def test_images_built_by_orlop_and_by_podman_run_on_the_other(daemon, tmp_path):
    podman = Podman(str(tmp_path / "podman"))
    try:
        ctx = write_context(tmp_path / "orlop", {"Dockerfile": "FROM busybox\nRUN echo built-by-orlop > /who\n"
                                                               'CMD ["cat", "/who"]\n'})
        build(daemon, ctx, "-t", "localhost/interop/orlop:1")
        saved = str(tmp_path / "orlop.tar")
        daemon.docker("save", "-o", saved, "localhost/interop/orlop:1")
        podman("load", "-i", saved)
        ran = podman("run", "--rm", "--network", "none", *PODMAN_ULIMITS, "localhost/interop/orlop:1").stdout
        assert ran == "built-by-orlop\n"
        pctx = write_context(tmp_path / "podman-ctx", {"Containerfile": "FROM localhost/interop/orlop:1\n"
                                                                        "RUN echo built-by-podman > /who\n"})
        podman("build", "--network", "none", *PODMAN_ULIMITS, "-t", "localhost/interop/podman:1", "-f",
               os.path.join(pctx, "Containerfile"), pctx, timeout=300)
        psaved = str(tmp_path / "podman.tar")
        podman("save", "-o", psaved, "localhost/interop/podman:1")
        daemon.docker("load", "-i", psaved)
        assert daemon.docker("run", "--rm", "localhost/interop/podman:1").stdout == "built-by-podman\n"
    finally:
        podman.cleanup()


def test_onbuild_triggers_shell_and_labels(daemon, tmp_path):
    base = write_context(tmp_path / "base", {"Dockerfile": "FROM busybox\nONBUILD RUN echo triggered > /onbuild\n"
                                                           'SHELL ["/bin/sh", "-ec"]\n'})
    build(daemon, base, "-t", "onbuild-base:1")
    child = write_context(tmp_path / "child", {"Dockerfile": "FROM onbuild-base:1\nRUN echo $0 > /shell\n"})
    build(daemon, child, "-t", "onbuild-child:1", "--label", "built.by=orlop")
    out = daemon.docker("run", "--rm", "onbuild-child:1", "cat", "/onbuild", "/shell").stdout
    assert out == "triggered\n/bin/sh\n"
    labels = json.loads(daemon.docker("image", "inspect", "-f", "{{json .Config.Labels}}", "onbuild-child:1").stdout)
    assert labels == {"built.by": "orlop"}
    assert json.loads(daemon.docker("image", "inspect", "-f", "{{json .Config.OnBuild}}",
                                    "onbuild-child:1").stdout) in (None, [])


def test_heredocs_symlinked_sources_and_buildkit_only_options(daemon, tmp_path):
    dockerfile = ("FROM busybox\nARG WHO=world\n"
                  "RUN <<EOF\necho step one > /one\necho step two >> /one\nEOF\n"
                  "COPY <<greeting.txt /etc/\nhello $WHO\ngreeting.txt\n"
                  "COPY link.txt /copied/\n")
    ctx = write_context(tmp_path, {"Dockerfile": dockerfile, "real.txt": "through the link\n"})
    os.symlink("real.txt", os.path.join(ctx, "link.txt"))
    build(daemon, ctx, "-t", "heredoc:1")
    out = daemon.docker("run", "--rm", "heredoc:1", "cat", "/one", "/etc/greeting.txt", "/copied/link.txt").stdout
    assert out == "step one\nstep two\nhello world\nthrough the link\n"
    refused = write_context(tmp_path / "mount", {"Dockerfile": "FROM busybox\nRUN --mount=type=cache,target=/c true\n"})
    done = build(daemon, refused, check=False)
    assert done.returncode != 0 and "the --mount option requires BuildKit" in done.stderr


def test_the_daemon_applies_dockerignore_to_a_raw_context(daemon):
    """A client that sends the whole directory (curl, docker-py with custom_context) still
    gets .dockerignore applied: excluded files are not in the context the steps see."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in {"Dockerfile": "FROM busybox\nCOPY . /ctx\n", ".dockerignore": "secret*\n.dockerignore\n",
                           "secret.key": "s3cr3t", "app.txt": "app"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    buf.seek(0)
    client = daemon.client()
    image, _ = client.images.build(fileobj=buf, custom_context=True, tag="raw-context:1")
    files = client.containers.run("raw-context:1", ["find", "/ctx", "-type", "f"], remove=True).decode().split()
    assert sorted(files) == ["/ctx/Dockerfile", "/ctx/app.txt"]


def test_a_run_layer_holds_only_what_the_command_changed(daemon, tmp_path):
    """Mount points the runtime creates in an image without them (/etc/hosts, /proc, /dev…)
    stay out of the layer, as Docker's init layer keeps them out; a RUN writing to
    /etc/hosts changes the build container's copy, not the host's file."""
    with open("/etc/hosts", "rb") as f:
        host_hosts = f.read()
    dockerfile = ("FROM scratch\nCOPY --from=busybox /bin/busybox /bin/busybox\n"
                  'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox echo hi > /made; '
                  '/bin/busybox echo 10.9.9.9 build-only >> /etc/hosts"]\n')
    ctx = write_context(tmp_path, {"Dockerfile": dockerfile})
    build(daemon, ctx, "-t", "bare-run:1")
    with open("/etc/hosts", "rb") as f:
        assert f.read() == host_hosts
    archive = str(tmp_path / "bare.tar")
    daemon.docker("save", "-o", archive, "bare-run:1")
    with tarfile.open(archive) as saved:
        manifest = json.load(saved.extractfile("manifest.json"))[0]
        with tarfile.open(fileobj=saved.extractfile(manifest["Layers"][-1])) as layer:
            names = sorted(m.name.rstrip("/") for m in layer.getmembers())
    assert names == ["made"]
