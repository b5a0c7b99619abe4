"""POST /commit: `docker commit`, a container's changes as a new image."""

from __future__ import annotations

from aiohttp import web

from orlop.api.common import boolean, json_body, json_response
from orlop.containers import validate
from orlop.containers.commit import Committer
from orlop.errors import NotFound


class CommitRoutes:
    def __init__(self, committer: Committer) -> None:
        self.committer = committer

    def register(self, add) -> None:
        add("POST", "/commit", self.commit)

    async def commit(self, request: web.Request) -> web.Response:
        ref = request.query.get("container", "")
        if not ref:
            raise NotFound("No such container: ")
        config = await json_body(request, allow_empty=True)
        if config:
            validate.config(config)  # the same checks as a create's Config
        image_id = await self.committer.commit(
            ref, repo=request.query.get("repo", ""), tag=request.query.get("tag", ""),
            author=request.query.get("author", ""), comment=request.query.get("comment", ""),
            pause=boolean(request, "pause", True), changes=request.query.getall("changes", []),
            config=config or None)
        return json_response({"Id": image_id}, status=201)
