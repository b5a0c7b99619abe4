"""`docker search`: the v1 search API of a registry's index (index.docker.io for
unqualified terms, else the host the term names), as dockerd asks it, with the
is-official and stars filters applied to its answer."""

from __future__ import annotations

import urllib.parse

from orlop.images.registry import RegistryError, is_insecure_host

DOCKER_INDEX = "index.docker.io"
_HUB_NAMES = {"docker.io", "index.docker.io", "registry-1.docker.io"}


def split_term(term: str) -> tuple[str, str]:
    """("index host", "what to search for"): "localhost:5000/busy" names its index,
    "busybox" or "library/busybox" search Docker Hub's."""
    first, slash, rest = term.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return (DOCKER_INDEX if first in _HUB_NAMES else first), rest
    return DOCKER_INDEX, term


def _passes(result: dict, filters: dict[str, list[str]]) -> bool:
    for value in filters.get("is-official", []):
        if bool(result.get("is_official")) != (value.lower() in ("true", "1")):
            return False
    for value in filters.get("stars", []):
        if int(result.get("star_count") or 0) < int(value):
            return False
    return True


async def search(term: str, limit: int, filters: dict[str, list[str]],
                 insecure_hosts: frozenset[str] = frozenset(),
                 credentials: tuple[str, str] | None = None) -> list[dict]:
    import aiohttp

    host, what = split_term(term)
    scheme = "http" if is_insecure_host(host, insecure_hosts) else "https"
    url = f"{scheme}://{host}/v1/search?{urllib.parse.urlencode({'q': what, 'n': limit})}"
    auth = aiohttp.BasicAuth(*credentials) if credentials else None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            async with session.get(url, auth=auth, headers={"User-Agent": "orlop/0.1"}) as response:
                if response.status != 200:
                    raise RegistryError(response.status, f"Unexpected status code {response.status}")
                answer = await response.json(content_type=None)
    except aiohttp.ClientError as e:
        raise RegistryError(502, f"Get \"{url}\": {e}") from None
    except ValueError:
        raise RegistryError(502, f"{host}: the search answer is not JSON") from None
    results = answer.get("results") if isinstance(answer, dict) else None
    found = []
    for result in results or []:
        entry = {"star_count": int(result.get("star_count") or 0), "is_official": bool(result.get("is_official")),
                 "name": str(result.get("name") or ""), "is_automated": bool(result.get("is_automated")),
                 "description": str(result.get("description") or "")}
        if _passes(entry, filters):
            found.append(entry)
    return found[:limit]
