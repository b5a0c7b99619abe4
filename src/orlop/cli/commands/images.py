"""Image commands: pull, push, images, rmi, tag, save, load, history, image prune."""

from __future__ import annotations

import os
import sys

from orlop.cli import units
from orlop.cli.errors import CommandError
from orlop.cli.flags import Spec, command, flag
from orlop.cli.formatter import Format


def _reference(name: str):
    from orlop.images.reference import InvalidReference, parse

    try:
        return parse(name, default_tag=False)
    except InvalidReference as e:
        raise CommandError(f"invalid reference format: {e}") from None
    except ValueError as e:
        raise CommandError(f"invalid reference format: {e}") from None


def pull_image(cli, name: str, *, fd: int = 1, quiet: bool = False, platform: str | None = None,
               all_tags: bool = False) -> str:
    """POST /images/create with the user's credentials, progress shown on `fd`; returns the
    full reference pulled ("docker.io/library/busybox:latest")."""
    from orlop.cli.commands.registry import registry_auth_header
    from orlop.cli.progress import display

    ref = _reference(name)
    tag = ref.digest or ref.tag or ("" if all_tags else "latest")
    query = {"fromImage": ref.name, "tag": tag or None, "platform": platform}
    response = cli.client.request("POST", "/images/create", query,
                                  headers={"X-Registry-Auth": registry_auth_header(ref.domain)})
    try:
        messages = response.json_lines()
        if quiet:
            for message in messages:
                if message.get("errorDetail") is not None:
                    display([message], fd)
        else:
            display(messages, fd)
    finally:
        response.close()
    return ref.name + (f"@{ref.digest}" if ref.digest else f":{tag}" if tag else "")


PULL_SPEC = Spec("pull", "orlop pull [OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry", [
    flag("-a, --all-tags", "bool", "Download all tagged images in the repository"),
    flag("--platform", "string", "Set platform if server is multi-platform capable"),
    flag("-q, --quiet", "bool", "Suppress verbose output"),
], min_args=1, max_args=1, aliases="orlop image pull, orlop pull")


@command(PULL_SPEC)
def pull(cli, opts, args):
    name = args[0]
    ref = _reference(name)
    if not ref.tag and not ref.digest and not opts.all_tags:
        sys.stdout.write("Using default tag: latest\n")
        sys.stdout.flush()
    elif opts.all_tags and (ref.tag or ref.digest):
        raise CommandError("tag can't be used with --all-tags/-a")
    full = pull_image(cli, name, quiet=opts.quiet, platform=opts.platform, all_tags=opts.all_tags)
    sys.stdout.write(full + "\n")
    return 0


PUSH_SPEC = Spec("push", "orlop push [OPTIONS] NAME[:TAG]", "Upload an image to a registry", [
    flag("-a, --all-tags", "bool", "Push all tags of an image to the repository"),
    flag("-q, --quiet", "bool", "Suppress verbose output"),
], min_args=1, max_args=1, aliases="orlop image push, orlop push")


@command(PUSH_SPEC)
def push(cli, opts, args):
    from orlop.cli.commands.registry import registry_auth_header
    from orlop.cli.progress import display

    ref = _reference(args[0])
    if opts.all_tags and ref.tag:
        raise CommandError("tag can't be used with --all-tags/-a")
    tag = "" if opts.all_tags else (ref.tag or "latest")
    if not opts.all_tags and not ref.tag:
        sys.stdout.write("Using default tag: latest\n")
        sys.stdout.flush()
    response = cli.client.request("POST", f"/images/{ref.familiar_name}/push", {"tag": tag},
                                  headers={"X-Registry-Auth": registry_auth_header(ref.domain)})
    try:
        messages = response.json_lines()
        if opts.quiet:
            display((m for m in messages if m.get("errorDetail") is not None), 1)
            sys.stdout.write(f"{ref.familiar_name}:{tag}\n" if tag else f"{ref.familiar_name}\n")
        else:
            display(messages, 1)
    finally:
        response.close()
    return 0


IMAGES_SPEC = Spec("images", "orlop images [OPTIONS] [REPOSITORY[:TAG]]", "List images", [
    flag("-a, --all", "bool", "Show all images (default hides intermediate images)"),
    flag("--digests", "bool", "Show digests"),
    flag("-f, --filter", "list", "Filter output based on conditions provided", metavar="filter"),
    flag("--format", "string", "Format output using a custom template:\n'table': Print output in table format "
         "with column headers (default)\n'table TEMPLATE': Print output in table format using the given Go "
         "template\n'json': Print in JSON format\n'TEMPLATE': Print output using the given Go template"),
    flag("--no-trunc", "bool", "Don't truncate output"),
    flag("-q, --quiet", "bool", "Only show image IDs"),
], max_args=1, aliases="orlop image ls, orlop image list, orlop images")

IMAGE_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
                 "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
                 "VirtualSize": "VIRTUAL SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE"}


def filters_json(values: list[str], extra: dict[str, list[str]] | None = None) -> str | None:
    """`-f key=value` options as the API's filters: {"key": {"value": true}}."""
    from orlop.cli import gojson

    filters: dict[str, dict[str, bool]] = {}
    for key, items in (extra or {}).items():
        for item in items:
            filters.setdefault(key, {})[item] = True
    for value in values:
        key, eq, item = value.partition("=")
        if not eq:
            raise CommandError("bad format of filter (expected name=value)")
        filters.setdefault(key.strip().lower(), {})[item] = True
    return gojson.dumps(filters) if filters else None


def _short_id(image_id: str, no_trunc: bool) -> str:
    if no_trunc:
        return image_id
    return image_id.removeprefix("sha256:")[:12]


def image_rows(images: list[dict], no_trunc: bool, digests: bool) -> list[dict]:
    rows = []
    now = __import__("time").time()
    for image in images:
        tags = image.get("RepoTags") or []
        repo_digests = image.get("RepoDigests") or []
        pairs: list[tuple[str, str, str]] = []
        for tag in tags:
            if tag == "<none>:<none>":
                continue
            repo, _, name = tag.rpartition(":")
            digest = next((d.partition("@")[2] for d in repo_digests if d.partition("@")[0] == repo), "<none>")
            pairs.append((repo, name, digest))
        if not pairs:
            if repo_digests:
                for d in repo_digests:
                    repo, _, digest = d.partition("@")
                    pairs.append((repo, "<none>", digest))
            else:
                pairs.append(("<none>", "<none>", "<none>"))
        created = image.get("Created") or 0
        for repo, tag, digest in pairs:
            shared = image.get("SharedSize", -1)
            rows.append({  # keys sorted, as docker's JSON of a formatter row
                "Containers": "N/A" if image.get("Containers", -1) < 0 else str(image["Containers"]),
                "CreatedAt": units.local_time(created),
                "CreatedSince": units.ago(created, now),
                "Digest": digest if digests else "<none>",
                "ID": _short_id(image["Id"], no_trunc), "Repository": repo,
                "SharedSize": "N/A" if shared < 0 else units.human_size(shared, 4),
                "Size": units.human_size(image.get("Size") or 0),
                "Tag": tag,
                "UniqueSize": "N/A" if shared < 0 else units.human_size((image.get("Size") or 0) - shared, 4),
                "VirtualSize": units.human_size(image.get("VirtualSize") or image.get("Size") or 0, 4),
            })
    return rows


@command(IMAGES_SPEC)
def images(cli, opts, args):
    extra = {"reference": [args[0]]} if args else None
    query = {"all": bool(opts.all), "filters": filters_json(opts.filter, extra)}
    found = cli.client.get("/images/json", query) or []
    rows = image_rows(found, opts.no_trunc, opts.digests or "{{.Digest}}" in (opts.format or ""))
    if opts.quiet and not opts.format:
        seen = []
        for row in rows:
            if row["ID"] not in seen:
                seen.append(row["ID"])
        sys.stdout.write("".join(i + "\n" for i in seen))
        return 0
    default = "table {{.Repository}}\t{{.Tag}}\t" + ("{{.Digest}}\t" if opts.digests else "") + \
        "{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    fmt = Format(opts.format or "", default, IMAGE_HEADERS)
    sys.stdout.write(fmt.render(rows))
    return 0


RMI_SPEC = Spec("rmi", "orlop rmi [OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", [
    flag("-f, --force", "bool", "Force removal of the image"),
    flag("--no-prune", "bool", "Do not delete untagged parents"),
], min_args=1, aliases="orlop image rm, orlop image remove, orlop rmi")


@command(RMI_SPEC)
def rmi(cli, opts, args):
    from orlop.cli.client import APIError

    failed = False
    for name in args:
        try:
            deleted = cli.client.call("DELETE", f"/images/{name}", {"force": opts.force, "noprune": opts.no_prune})
        except APIError as e:
            sys.stdout.flush()
            sys.stderr.write(f"Error response from daemon: {e.message}\n")
            sys.stderr.flush()
            failed = True
            continue
        for entry in deleted or []:
            if entry.get("Untagged"):
                sys.stdout.write(f"Untagged: {entry['Untagged']}\n")
            if entry.get("Deleted"):
                sys.stdout.write(f"Deleted: {entry['Deleted']}\n")
    return 1 if failed else 0


TAG_SPEC = Spec("tag", "orlop tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
                "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", [], min_args=2, max_args=2,
                aliases="orlop image tag, orlop tag")


@command(TAG_SPEC)
def tag(cli, opts, args):
    source, target = args
    ref = _reference(target)
    if ref.digest:
        raise CommandError("refusing to create a tag with a digest reference")
    cli.client.call("POST", f"/images/{source}/tag", {"repo": ref.name, "tag": ref.tag or "latest"})
    return 0


SAVE_SPEC = Spec("save", "orlop save [OPTIONS] IMAGE [IMAGE...]",
                 "Save one or more images to a tar archive (streamed to STDOUT by default)", [
                     flag("-o, --output", "string", "Write to a file, instead of STDOUT"),
                     flag("--platform", "list", "Save only the given platform(s)"),
                 ], min_args=1, aliases="orlop image save, orlop save")


@command(SAVE_SPEC)
def save(cli, opts, args):
    from orlop.cli.streams import save_archive

    if not opts.output and os.isatty(1):
        raise CommandError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    response = cli.client.request("GET", "/images/get", [("names", name) for name in args])
    try:
        save_archive(response, opts.output, "failed to save image")
    finally:
        response.close()
    return 0


LOAD_SPEC = Spec("load", "orlop load [OPTIONS]", "Load an image from a tar archive or STDIN", [
    flag("-i, --input", "string", "Read from tar archive file, instead of STDIN"),
    flag("-q, --quiet", "bool", "Suppress the load output"),
], max_args=0, aliases="orlop image load, orlop load")


@command(LOAD_SPEC)
def load(cli, opts, args):
    from orlop.cli.progress import display

    if opts.input:
        try:
            source = open(opts.input, "rb")
        except OSError as e:
            raise CommandError(f"open {opts.input}: {e.strerror.lower() if e.strerror else e}") from None
    else:
        if os.isatty(0):
            raise CommandError("requested load from stdin, but stdin is empty")
        source = os.fdopen(os.dup(0), "rb")
    with source:
        headers = {"Content-Type": "application/x-tar"}
        body = source
        if opts.input:
            size = os.fstat(source.fileno()).st_size
            headers["Content-Length"] = str(size)
            body = _FileBody(source, size)
        response = cli.client.request("POST", "/images/load", {"quiet": opts.quiet}, body=body, headers=headers)
    try:
        display(response.json_lines(), 1, terminal=False)
    finally:
        response.close()
    return 0


class _FileBody:
    """A file sent with a Content-Length rather than chunked."""

    def __init__(self, f, size: int) -> None:
        self.f = f
        self.size = size

    def __iter__(self):
        return iter(lambda: self.f.read(1 << 20), b"")


HISTORY_SPEC = Spec("history", "orlop history [OPTIONS] IMAGE", "Show the history of an image", [
    flag("--format", "string", "Format output using a custom template"),
    flag("-H, --human", "bool", "Print sizes and dates in human readable format", True),
    flag("--no-trunc", "bool", "Don't truncate output"),
    flag("-q, --quiet", "bool", "Only show image IDs"),
], min_args=1, max_args=1, aliases="orlop image history, orlop history")


@command(HISTORY_SPEC)
def history(cli, opts, args):
    import time

    entries = cli.client.get(f"/images/{args[0]}/history") or []
    now = time.time()
    rows = []
    for entry in entries:
        image_id = entry.get("Id") or ""
        created_by = (entry.get("CreatedBy") or "").replace("\t", " ")
        if not opts.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append({
            "ID": image_id if opts.no_trunc or image_id == "<missing>" else image_id.removeprefix("sha256:")[:12],
            "CreatedSince": "N/A" if not entry.get("Created") else units.ago(entry["Created"], now) if opts.human
            else units.local_time(entry["Created"]),
            "CreatedAt": units.local_time(entry.get("Created") or 0), "CreatedBy": created_by,
            "Size": units.human_size(entry.get("Size") or 0) if opts.human else str(entry.get("Size") or 0),
            "Comment": entry.get("Comment") or "",
        })
    if opts.quiet:
        sys.stdout.write("".join(row["ID"] + "\n" for row in rows))
        return 0
    fmt = Format(opts.format or "", "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
                 {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
                  "Size": "SIZE", "Comment": "COMMENT"})
    sys.stdout.write(fmt.render(rows))
    return 0


PRUNE_SPEC = Spec("image prune", "orlop image prune [OPTIONS]", "Remove unused images", [
    flag("-a, --all", "bool", "Remove all unused images, not just dangling ones"),
    flag("--filter", "list", "Provide filter values (e.g. \"until=<timestamp>\")", metavar="filter"),
    flag("-f, --force", "bool", "Do not prompt for confirmation"),
], max_args=0)


def confirm(question: str) -> bool:
    sys.stdout.write(question + " [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def prune_images(cli, all_images: bool, filters: list[str]) -> tuple[list[str], int]:
    extra = {"dangling": ["false"]} if all_images else {"dangling": ["true"]}
    result = cli.client.post("/images/prune", {"filters": filters_json(filters, extra)}) or {}
    lines = []
    for entry in result.get("ImagesDeleted") or []:
        if entry.get("Untagged"):
            lines.append(f"untagged: {entry['Untagged']}")
        if entry.get("Deleted"):
            lines.append(f"deleted: {entry['Deleted']}")
    return lines, int(result.get("SpaceReclaimed") or 0)


@command(PRUNE_SPEC)
def prune(cli, opts, args):
    warning = ("WARNING! This will remove all images without at least one container associated to them."
               if opts.all else "WARNING! This will remove all dangling images.")
    if not opts.force and not confirm(warning + "\nAre you sure you want to continue?"):
        return 0
    lines, reclaimed = prune_images(cli, opts.all, opts.filter)
    if lines:
        sys.stdout.write("Deleted Images:\n" + "".join(line + "\n" for line in lines) + "\n")
    sys.stdout.write(f"Total reclaimed space: {units.human_size(reclaimed)}\n")
    return 0


SEARCH_SPEC = Spec("search", "orlop search [OPTIONS] TERM", "Search Docker Hub for images", [
    flag("-f, --filter", "list", "Filter output based on conditions provided", metavar="filter"),
    flag("--format", "string", "Pretty-print search using a Go template"),
    flag("--limit", "int", "Max number of search results", 0),
    flag("--no-trunc", "bool", "Don't truncate output"),
], min_args=1, max_args=1)


@command(SEARCH_SPEC)
def search(cli, opts, args):
    from orlop.cli.commands.registry import registry_auth_header

    first, slash, _ = args[0].partition("/")  # the index the term names, as the daemon splits it
    index = first if slash and ("." in first or ":" in first or first == "localhost") else "docker.io"
    query = {"term": args[0], "limit": opts.limit or None, "filters": filters_json(opts.filter)}
    found = cli.client.call("GET", "/images/search", query,
                            headers={"X-Registry-Auth": registry_auth_header(index)}) or []
    rows = []
    for result in found:
        description = " ".join((result.get("description") or "").split("\n"))
        if not opts.no_trunc and len(description) > 45:
            description = description[:44] + "…"
        rows.append({"Name": result.get("name", ""), "Description": description,
                     "StarCount": str(result.get("star_count", 0)),
                     "IsOfficial": "[OK]" if result.get("is_official") else "",
                     "IsAutomated": "[OK]" if result.get("is_automated") else ""})
    fmt = Format(opts.format or "", "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}",
                 {"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS", "IsOfficial": "OFFICIAL",
                  "IsAutomated": "AUTOMATED"})
    sys.stdout.write(fmt.render(rows))
    return 0


IMPORT_SPEC = Spec("import", "orlop import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
                   "Import the contents from a tarball to create a filesystem image", [
                       flag("-c, --change", "list", "Apply Dockerfile instruction to the created image"),
                       flag("-m, --message", "string", "Set commit message for imported image"),
                       flag("--platform", "string", "Set platform if server is multi-platform capable"),
                   ], min_args=1, max_args=2, aliases="orlop image import, orlop import")


@command(IMPORT_SPEC)
def import_(cli, opts, args):
    from orlop.cli.progress import display

    source, repository = args[0], args[1] if len(args) > 1 else ""
    if repository:
        _reference(repository)  # refused here if malformed; sent as given (name[:tag]), as the docker CLI does
    query = [*[("changes", change) for change in opts.change or []],
             ("fromSrc", "-" if source == "-" or "://" not in source else source), ("message", opts.message or None),
             ("platform", opts.platform or None), ("repo", repository or None)]
    body, headers, f = None, {}, None
    if source == "-":
        f = os.fdopen(os.dup(0), "rb")
        body = iter(lambda: f.read(1 << 20), b"")
    elif "://" not in source:
        try:
            f = open(source, "rb")
        except OSError as e:
            raise CommandError(f"open {source}: {e.strerror.lower() if e.strerror else e}") from None
        size = os.fstat(f.fileno()).st_size
        body, headers = _FileBody(f, size), {"Content-Length": str(size)}
    try:
        response = cli.client.request("POST", "/images/create", query, body=body,
                                      headers={"Content-Type": "application/x-tar", **headers})
    finally:
        if f is not None:
            f.close()
    try:
        display(response.json_lines(), 1, terminal=False)
    finally:
        response.close()
    return 0
