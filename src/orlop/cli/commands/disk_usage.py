"""`orlop system df [-v]`: the daemon's disk usage in the docker CLI's tables
(cli/command/formatter/disk_usage.go): a summary row per kind, or each image, container,
volume and build cache record."""

from __future__ import annotations

import sys
import time

from orlop.cli import units
from orlop.cli.flags import Spec, command, flag
from orlop.cli.formatter import Format

DF_SPEC = Spec("system df", "orlop system df [OPTIONS]", "Show orlop disk usage", [
    flag("--format", "string", "Format output using a custom template:\n'table': Print output in table format with "
         "column headers (default)\n'table TEMPLATE': Print output in table format using the given Go template\n"
         "'json': Print in JSON format\n'TEMPLATE': Print output using the given Go template"),
    flag("-v, --verbose", "bool", "Show detailed information on space usage"),
], max_args=0)

SUMMARY_DEFAULT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
SUMMARY_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
                   "Reclaimable": "RECLAIMABLE"}
IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t" \
               "{{.UniqueSize}}\t{{.Containers}}"
CONTAINERS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t" \
                   "{{.Status}}\t{{.Names}}"
VOLUMES_TABLE = "table {{.Name}}\t{{.Links}}\t{{.Size}}"
VOLUME_HEADERS = {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}
CACHE_TABLE = "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t" \
              "{{.UsageCount}}\t{{.Shared}}"
CACHE_HEADERS = {"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE", "CreatedSince": "CREATED",
                 "LastUsedSince": "LAST USED", "UsageCount": "USAGE", "Shared": "SHARED"}


def _size(size: float) -> str:
    """go-units HumanSize (4 significant digits), as the df tables show sizes."""
    return units.human_size(size, 4)


def _reclaimable(reclaimable: int, total: int) -> str:
    if total > 0:
        return f"{_size(reclaimable)} ({reclaimable * 100 // total}%)"
    return _size(reclaimable)


def summary_rows(usage: dict) -> list[dict]:
    images = usage.get("Images") or []
    layers = usage.get("LayersSize") or 0
    used = sum(i["Size"] - i["SharedSize"] for i in images
               if i.get("Containers") and i.get("Size", -1) != -1 and i.get("SharedSize", -1) != -1)
    containers = usage.get("Containers") or []
    active = [c for c in containers if any(s in (c.get("State") or "") for s in ("running", "paused", "restarting"))]
    container_size = sum(c.get("SizeRw") or 0 for c in containers if (c.get("SizeRw") or 0) != -1)
    idle_size = sum(c.get("SizeRw") or 0 for c in containers if c not in active and (c.get("SizeRw") or 0) != -1)
    volumes = usage.get("Volumes") or []
    volume_size = sum(v["UsageData"]["Size"] for v in volumes if v.get("UsageData", {}).get("Size", -1) != -1)
    unused_volumes = sum(v["UsageData"]["Size"] for v in volumes
                         if v.get("UsageData", {}).get("RefCount") == 0 and v["UsageData"].get("Size", -1) != -1)
    cache = usage.get("BuildCache") or []
    cache_size = sum(c.get("Size") or 0 for c in cache if not c.get("Shared"))
    cache_idle = sum(c.get("Size") or 0 for c in cache if not c.get("Shared") and not c.get("InUse"))
    return [
        {"Type": "Images", "TotalCount": str(len(images)), "Active": str(sum(1 for i in images if i.get("Containers"))),
         "Size": _size(layers), "Reclaimable": _reclaimable(layers - used, layers)},
        {"Type": "Containers", "TotalCount": str(len(containers)), "Active": str(len(active)),
         "Size": _size(container_size), "Reclaimable": _reclaimable(idle_size, container_size)},
        {"Type": "Local Volumes", "TotalCount": str(len(volumes)),
         "Active": str(sum(1 for v in volumes if (v.get("UsageData") or {}).get("RefCount", 0) > 0)),
         "Size": _size(volume_size), "Reclaimable": _reclaimable(unused_volumes, volume_size)},
        {"Type": "Build Cache", "TotalCount": str(len(cache)),
         "Active": str(sum(1 for c in cache if c.get("InUse"))), "Size": _size(cache_size),
         "Reclaimable": _size(cache_idle)},
    ]


@command(DF_SPEC)
def df(cli, opts, args):
    usage = cli.client.get("/system/df") or {}
    if not opts.verbose:
        fmt = Format(opts.format or "", SUMMARY_DEFAULT, SUMMARY_HEADERS)
        sys.stdout.write(fmt.render(summary_rows(usage)))
        return 0
    from orlop.cli.commands.images import IMAGE_HEADERS, image_rows
    from orlop.cli.commands.ps import PS_HEADERS, container_row

    now = time.time()
    images = []
    for image in usage.get("Images") or []:
        tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
        first = dict(image, RepoTags=tags[:1], RepoDigests=[])  # only the first tag, as docker shows it
        images.extend(image_rows([first], False, False))
    containers = [container_row(dict(c, SizeRootFs=0), True, now) for c in usage.get("Containers") or []]
    volumes = [{"Name": v["Name"], "Links": _count(v, "RefCount"), "Size": _volume_size(v)}
               for v in usage.get("Volumes") or []]
    out = ["Images space usage:\n\n", Format("", IMAGES_TABLE, IMAGE_HEADERS).render(images),
           "\nContainers space usage:\n\n", Format("", CONTAINERS_TABLE, PS_HEADERS).render(containers),
           "\nLocal Volumes space usage:\n\n", Format("", VOLUMES_TABLE, VOLUME_HEADERS).render(volumes),
           f"\nBuild cache usage: {_size(usage.get('BuilderSize') or 0)}\n\n",
           Format("", CACHE_TABLE, CACHE_HEADERS).render([])]
    sys.stdout.write("".join(out))
    return 0


def _count(volume: dict, key: str) -> str:
    value = (volume.get("UsageData") or {}).get(key, -1)
    return "N/A" if value == -1 else str(value)


def _volume_size(volume: dict) -> str:
    value = (volume.get("UsageData") or {}).get("Size", -1)
    return "N/A" if value == -1 else _size(value)
