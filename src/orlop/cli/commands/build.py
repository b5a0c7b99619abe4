"""orlop build: the context directory as a tar (what .dockerignore excludes left out, as
the docker CLI does), POST /build, the daemon's messages printed as they come."""

from __future__ import annotations

import os
import sys

from orlop.cli.errors import CommandError
from orlop.cli.flags import Spec, command, flag

BUILD_SPEC = Spec("build", "orlop build [OPTIONS] PATH", "Build an image from a Dockerfile", [
    flag("-t, --tag", "list", "Name and optionally a tag in the 'name:tag' format"),
    flag("-f, --file", "string", "Name of the Dockerfile (Default is 'PATH/Dockerfile')"),
    flag("--build-arg", "list", "Set build-time variables"),
    flag("--label", "list", "Set metadata for an image"),
    flag("--no-cache", "bool", "Do not use cache when building the image"),
    flag("--pull", "bool", "Always attempt to pull a newer version of the image"),
    flag("--target", "string", "Set the target build stage to build"),
    flag("-q, --quiet", "bool", "Suppress the build output and print image ID on success"),
    flag("--rm", "bool", "Remove intermediate containers after a successful build", True),
], min_args=1, max_args=1, aliases="orlop image build, orlop build")


def _spool():
    """An unnamed temporary file (O_TMPFILE: nothing to clean up, and no `tempfile` import,
    ~10 ms of start-up)."""
    try:
        fd = os.open(os.environ.get("TMPDIR") or "/tmp", os.O_TMPFILE | os.O_RDWR, 0o600)
    except OSError:
        import tempfile

        return tempfile.TemporaryFile()
    return os.fdopen(fd, "w+b")


def _context_tar(path: str, dockerfile: str):
    import tarfile

    matcher = None
    if os.path.lexists(os.path.join(path, ".dockerignore")):
        from orlop.build.ignore import load

        matcher = load(path)
    spool = _spool()
    with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory, dirs, files in os.walk(path):
            dirs.sort()
            rel_dir = os.path.relpath(directory, path)
            for name in sorted(dirs + files):
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                keep = matcher is None or rel in (dockerfile, ".dockerignore") or not matcher.excluded(rel)
                full = os.path.join(directory, name)
                if os.path.isdir(full) and not os.path.islink(full):
                    if not keep and not matcher.may_include_below(rel):
                        dirs.remove(name)
                    if keep:
                        tar.add(full, arcname=rel, recursive=False)
                elif keep:
                    tar.add(full, arcname=rel, recursive=False)
    spool.seek(0)
    return spool


@command(BUILD_SPEC)
def build(cli, opts, args):
    from orlop.cli import gojson
    from orlop.cli.commands.common import key_values

    path = args[0]
    if not os.path.isdir(path):
        raise CommandError(f'unable to prepare context: path "{path}" not found')
    dockerfile = opts.file or "Dockerfile"
    if os.path.isabs(dockerfile):
        dockerfile = os.path.relpath(dockerfile, path)
    if not os.path.isfile(os.path.join(path, dockerfile)):
        raise CommandError(f"unable to prepare context: Dockerfile {dockerfile} not found in {path}")
    context = _context_tar(path, dockerfile)
    size = os.fstat(context.fileno()).st_size
    if not opts.quiet:
        sys.stderr.write(f"Sending build context to orlopd  {size / 1000:.3g}kB\n")
    query = [("t", tag) for tag in opts.tag or []] + [
        ("dockerfile", dockerfile), ("buildargs", gojson.dumps(key_values(opts.build_arg, "build-arg", from_env=True))),
        ("labels", gojson.dumps(key_values(opts.label, "label", from_env=True))), ("nocache", opts.no_cache), ("pull", opts.pull),
        ("target", opts.target), ("q", opts.quiet), ("rm", opts.rm)]
    body = iter(lambda: context.read(1 << 20), b"")
    response = cli.client.request("POST", "/build", query, body=body,
                                  headers={"Content-Type": "application/x-tar", "Content-Length": str(size)})
    image_id = None
    try:
        for message in response.json_lines():
            if message.get("errorDetail") or message.get("error"):
                error = (message.get("errorDetail") or {}).get("message") or message.get("error")
                sys.stdout.flush()
                raise CommandError(error)
            if "aux" in message:
                image_id = (message["aux"] or {}).get("ID") or image_id
            text = message.get("stream")
            if text and not opts.quiet:
                sys.stdout.write(text)
                sys.stdout.flush()
    finally:
        response.close()
        context.close()
    if opts.quiet and image_id:
        sys.stdout.write(image_id + "\n")
    return 0
