"""Loopback GitHub REST API stand-in for tests: the real PyGithub talks to it over 127.0.0.1.

It speaks the shapes PyGithub reads (checked against PyGithub 2.x's source): repositories,
issues (create, get, list with `state`/`labels` filters and `Link` pagination, edit of
title/body/state/labels), issue comments (list, create), labels (list, add to an issue) and
file contents (GET and PUT with base64 content and the `sha` rule: updating needs the current
sha, creating must not clash). Later areas (releases, issue 7) can add routes the same way.

Fault injection, consumed one request at a time in order (optionally only for matching paths):

- ``fail_next(status=502)``: a 5xx (or any status) with GitHub's JSON error body;
- ``rate_limit_next(reset_in=30)``: 403 "API rate limit exceeded" with ``X-RateLimit-Remaining:
  0`` and ``X-RateLimit-Reset`` (epoch seconds), as GitHub sends;
- ``slow_next(seconds)``: the request is *carried out* and the answer held back, so a client
  that times out sees no answer although the write happened (the case that makes duplicates).

State is plain Python (``issues``, ``comments``, ``files``, ``requests``) for assertions.

    async with GitHubAPI(token="t", repo="hyper-hash/ops") as gh:
        Github(auth=Auth.Token("t"), base_url=gh.url) ...
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Json = dict[str, Any]
BODY = web.RequestKey("hh_github_body", object)


@dataclass
class Fault:
    status: int = 502
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: Json | None = None
    path_contains: str | None = None
    method: str | None = None

    def matches(self, request: web.Request) -> bool:
        if self.path_contains is not None and self.path_contains not in request.path:
            return False
        return self.method is None or self.method == request.method


@dataclass
class Recorded:
    method: str
    path: str
    status: int
    body: Any


class GitHubAPI:
    def __init__(self, *, token: str, repo: str, per_page_max: int = 100) -> None:
        self.token = token
        self.repo = repo
        self.owner, self.name = repo.split("/")
        self.issues: dict[int, Json] = {}
        self.comments: dict[int, list[Json]] = {}
        self.files: dict[str, Json] = {}
        self.labels: dict[str, Json] = {}
        self.releases: list[Json] = []
        """Newest first, as GitHub lists them; each with its `assets` (name -> bytes)."""
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.rate_limit_remaining = 5000
        self.per_page_max = per_page_max
        self._next_id = 1000
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        repo = "/repos/{owner}/{name}"
        app.router.add_get(repo, self._get_repo)
        app.router.add_get(f"{repo}/issues", self._list_issues)
        app.router.add_post(f"{repo}/issues", self._create_issue)
        app.router.add_get(f"{repo}/issues/{{number:\\d+}}", self._get_issue)
        app.router.add_patch(f"{repo}/issues/{{number:\\d+}}", self._edit_issue)
        app.router.add_get(f"{repo}/issues/{{number:\\d+}}/comments", self._list_comments)
        app.router.add_post(f"{repo}/issues/{{number:\\d+}}/comments", self._create_comment)
        app.router.add_post(f"{repo}/issues/{{number:\\d+}}/labels", self._add_labels)
        app.router.add_get(f"{repo}/labels", self._list_labels)
        app.router.add_get(f"{repo}/contents/{{path:.+}}", self._get_contents)
        app.router.add_put(f"{repo}/contents/{{path:.+}}", self._put_contents)
        app.router.add_get(f"{repo}/releases", self._list_releases)
        app.router.add_get(f"{repo}/releases/{{release_id:\\d+}}/assets", self._list_assets)
        # browser_download_url: public downloads, served here on loopback, no token needed.
        app.router.add_get("/downloads/{asset_id:\\d+}/{filename}", self._download)
        app.router.add_get("/rate_limit", self._rate_limit)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> GitHubAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- fault injection ---------------------------------------------------------------------

    def fail_next(
        self, status: int = 502, *, count: int = 1, path_contains: str | None = None
    ) -> None:
        for _ in range(count):
            self.faults.append(
                Fault(
                    status=status,
                    body={"message": "Server Error" if status >= 500 else "Refused"},
                    path_contains=path_contains,
                )
            )

    def rate_limit_next(self, reset_in: float = 30, *, count: int = 1) -> float:
        """403 rate limit; returns the advertised reset (epoch seconds)."""
        reset = int(time.time() + reset_in)
        for _ in range(count):
            self.faults.append(
                Fault(
                    status=403,
                    headers={
                        "X-RateLimit-Limit": "5000",
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": str(reset),
                        "X-RateLimit-Resource": "core",
                    },
                    body={
                        "message": "API rate limit exceeded for user ID 1.",
                        "documentation_url": "https://docs.github.com/rest/rate-limit",
                    },
                )
            )
        return reset

    def slow_next(self, seconds: float, *, count: int = 1, method: str | None = None) -> None:
        for _ in range(count):
            self.faults.append(Fault(status=0, delay=seconds, method=method))

    # -- plumbing ----------------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
        request[BODY] = body
        auth = request.headers.get("Authorization", "")
        if request.path.startswith("/downloads/"):
            return self._record(request, await handler(request), body)
        if auth not in (f"token {self.token}", f"Bearer {self.token}"):
            return self._record(request, self._json(401, {"message": "Bad credentials"}), body)
        fault = next((f for f in self.faults if f.matches(request)), None)
        if fault is not None:
            self.faults.remove(fault)
            if fault.status:
                return self._record(
                    request, self._json(fault.status, fault.body or {}, fault.headers), body
                )
            response = await handler(request)  # carried out, answer held back
            self._record(request, response, body)
            await asyncio.sleep(fault.delay)
            return response
        return self._record(request, await handler(request), body)

    def _record(
        self, request: web.Request, response: web.StreamResponse, body: Any
    ) -> web.StreamResponse:
        self.requests.append(Recorded(request.method, request.path, response.status, body))
        return response

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> web.Response:
        merged = {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": str(self.rate_limit_remaining),
            "X-RateLimit-Reset": str(int(time.time()) + 3600),
            **(headers or {}),
        }
        return web.Response(
            status=status, text=json.dumps(data), content_type="application/json", headers=merged
        )

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _repo_url(self) -> str:
        return f"{self.url}/repos/{self.repo}"

    def _html(self, tail: str) -> str:
        return f"https://github.invalid/{self.repo}/{tail}"

    def _label(self, name: str) -> Json:
        if name not in self.labels:
            self.labels[name] = {
                "id": self._id(),
                "name": name,
                "color": "ededed",
                "url": f"{self._repo_url()}/labels/{name}",
            }
        return self.labels[name]

    def _check_repo(self, request: web.Request) -> None:
        if (request.match_info["owner"], request.match_info["name"]) != (self.owner, self.name):
            raise web.HTTPNotFound(
                text=json.dumps({"message": "Not Found"}), content_type="application/json"
            )

    def _page(self, request: web.Request, items: list[Json]) -> web.Response:
        per_page = min(int(request.query.get("per_page", "30")), self.per_page_max)
        page = int(request.query.get("page", "1"))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            query = dict(request.query) | {"page": str(page + 1), "per_page": str(per_page)}
            link = request.url.with_query(query)
            next_url = f"{self.url}{link.path_qs}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        return self._json(200, chunk, headers)

    # -- routes ------------------------------------------------------------------------------

    async def _rate_limit(self, request: web.Request) -> web.Response:
        core = {"limit": 5000, "remaining": self.rate_limit_remaining, "reset": 0, "used": 0}
        return self._json(200, {"resources": {"core": core}, "rate": core})

    async def _get_repo(self, request: web.Request) -> web.Response:
        self._check_repo(request)
        return self._json(
            200,
            {
                "id": 1,
                "name": self.name,
                "full_name": self.repo,
                "owner": {"login": self.owner, "id": 1, "type": "Organization"},
                "url": self._repo_url(),
                "html_url": self._html(""),
                "default_branch": "main",
                "private": True,
            },
        )

    def _issue_json(self, issue: Json) -> Json:
        return {
            **issue,
            "labels": [self._label(n) for n in issue["label_names"]],
            "comments": len(self.comments.get(issue["number"], [])),
        }

    async def _list_issues(self, request: web.Request) -> web.Response:
        self._check_repo(request)
        state = request.query.get("state", "open")
        wanted = [n for n in request.query.get("labels", "").split(",") if n]
        found = [
            self._issue_json(i)
            for i in sorted(self.issues.values(), key=lambda i: -i["number"])
            if (state == "all" or i["state"] == state)
            and all(n in i["label_names"] for n in wanted)
        ]
        return self._page(request, found)

    async def _create_issue(self, request: web.Request) -> web.Response:
        self._check_repo(request)
        data: Any = request[BODY] or {}
        if not data.get("title"):
            return self._json(422, {"message": "Validation Failed", "errors": [{"field": "title"}]})
        number = len(self.issues) + 1
        now = _now()
        issue = {
            "id": self._id(),
            "number": number,
            "title": data["title"],
            "body": data.get("body"),
            "state": "open",
            "state_reason": None,
            "label_names": [str(n) for n in data.get("labels", [])],
            "url": f"{self._repo_url()}/issues/{number}",
            "html_url": self._html(f"issues/{number}"),
            "comments_url": f"{self._repo_url()}/issues/{number}/comments",
            "user": {"login": "hh-opsbot", "id": 7},
            "created_at": now,
            "updated_at": now,
            "closed_at": None,
        }
        self.issues[number] = issue
        self.comments[number] = []
        return self._json(201, self._issue_json(issue))

    def _issue(self, request: web.Request) -> Json:
        self._check_repo(request)
        issue = self.issues.get(int(request.match_info["number"]))
        if issue is None:
            raise web.HTTPNotFound(
                text=json.dumps({"message": "Not Found"}), content_type="application/json"
            )
        return issue

    async def _get_issue(self, request: web.Request) -> web.Response:
        return self._json(200, self._issue_json(self._issue(request)))

    async def _edit_issue(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        data: Any = request[BODY] or {}
        for key in ("title", "body"):
            if key in data:
                issue[key] = data[key]
        if "state" in data:
            if data["state"] not in ("open", "closed"):
                return self._json(422, {"message": "Validation Failed"})
            if data["state"] != issue["state"]:
                issue["closed_at"] = _now() if data["state"] == "closed" else None
            issue["state"] = data["state"]
        if "labels" in data:
            issue["label_names"] = [str(n) for n in data["labels"]]
        issue["updated_at"] = _now()
        return self._json(200, self._issue_json(issue))

    async def _list_comments(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        return self._page(request, self.comments[issue["number"]])

    async def _create_comment(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        data: Any = request[BODY] or {}
        if not data.get("body"):
            return self._json(422, {"message": "Validation Failed"})
        comment_id = self._id()
        comment = {
            "id": comment_id,
            "body": data["body"],
            "url": f"{self._repo_url()}/issues/comments/{comment_id}",
            "html_url": self._html(f"issues/{issue['number']}#issuecomment-{comment_id}"),
            "issue_url": issue["url"],
            "user": {"login": "hh-opsbot", "id": 7},
            "created_at": _now(),
            "updated_at": _now(),
        }
        self.comments[issue["number"]].append(comment)
        return self._json(201, comment)

    async def _add_labels(self, request: web.Request) -> web.Response:
        issue = self._issue(request)
        data: Any = request[BODY]
        names: list[Any] = data.get("labels", []) if isinstance(data, dict) else list(data or [])
        for name in names:
            if name not in issue["label_names"]:
                issue["label_names"].append(str(name))
        return self._json(200, [self._label(n) for n in issue["label_names"]])

    async def _list_labels(self, request: web.Request) -> web.Response:
        self._check_repo(request)
        return self._page(request, list(self.labels.values()))

    def _content_json(self, path: str) -> Json:
        stored = self.files[path]
        return {
            "type": "file",
            "encoding": "base64",
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": stored["sha"],
            "size": len(stored["raw"]),
            "content": base64.b64encode(stored["raw"]).decode(),
            "url": f"{self._repo_url()}/contents/{path}",
            "html_url": self._html(f"blob/main/{path}"),
        }

    async def _get_contents(self, request: web.Request) -> web.Response:
        self._check_repo(request)
        path = request.match_info["path"]
        if path not in self.files:
            return self._json(404, {"message": "Not Found"})
        return self._json(200, self._content_json(path))

    async def _put_contents(self, request: web.Request) -> web.Response:
        self._check_repo(request)
        path = request.match_info["path"]
        data: Any = request[BODY] or {}
        if not data.get("message") or "content" not in data:
            return self._json(422, {"message": "Invalid request."})
        existing = self.files.get(path)
        if existing is not None and data.get("sha") != existing["sha"]:
            if not data.get("sha"):
                return self._json(422, {"message": 'Invalid request.\n\n"sha" wasn\'t supplied.'})
            return self._json(409, {"message": f"{path} does not match {data.get('sha')}"})
        raw = base64.b64decode(data["content"])
        sha = hashlib.sha1(b"blob %d\0" % len(raw) + raw).hexdigest()
        self.files[path] = {"raw": raw, "sha": sha, "message": data["message"]}
        commit = {
            "sha": hashlib.sha1(sha.encode() + data["message"].encode()).hexdigest(),
            "message": data["message"],
            "url": f"{self._repo_url()}/git/commits/x",
            "html_url": self._html("commit/x"),
        }
        return self._json(
            201 if existing is None else 200,
            {"content": self._content_json(path), "commit": commit},
        )

    # -- helpers for tests -------------------------------------------------------------------

    # -- releases ----------------------------------------------------------------------------

    def add_release(self, tag: str, assets: dict[str, bytes], *, draft: bool = False) -> Json:
        """Publish a release (newest first) with its assets; returns its JSON."""
        release_id = self._id()
        stored = {
            "id": release_id,
            "tag_name": tag,
            "name": tag,
            "draft": draft,
            "prerelease": False,
            "assets": [
                {"id": self._id(), "name": name, "data": data} for name, data in assets.items()
            ],
        }
        self.releases.insert(0, stored)
        return stored

    def _asset_json(self, asset: Json) -> Json:
        return {
            "id": asset["id"],
            "name": asset["name"],
            "label": None,
            "state": "uploaded",
            "content_type": "application/octet-stream",
            "size": len(asset["data"]),
            "download_count": 0,
            "created_at": _now(),
            "updated_at": _now(),
            "url": f"{self._repo_url()}/releases/assets/{asset['id']}",
            "browser_download_url": f"{self.url}/downloads/{asset['id']}/{asset['name']}",
        }

    def _release_json(self, release: Json) -> Json:
        url = f"{self._repo_url()}/releases/{release['id']}"
        return {
            "id": release["id"],
            "tag_name": release["tag_name"],
            "name": release["name"],
            "draft": release["draft"],
            "prerelease": release["prerelease"],
            "url": url,
            "assets_url": f"{url}/assets",
            "html_url": self._html(f"releases/tag/{release['tag_name']}"),
            "created_at": _now(),
            "published_at": _now(),
            "body": "",
            "assets": [self._asset_json(a) for a in release["assets"]],
        }

    async def _list_releases(self, request: web.Request) -> web.Response:
        self._check_repo(request)
        return self._page(request, [self._release_json(r) for r in self.releases])

    async def _list_assets(self, request: web.Request) -> web.Response:
        self._check_repo(request)
        wanted = int(request.match_info["release_id"])
        release = next((r for r in self.releases if r["id"] == wanted), None)
        if release is None:
            return self._json(404, {"message": "Not Found"})
        return self._page(request, [self._asset_json(a) for a in release["assets"]])

    async def _download(self, request: web.Request) -> web.StreamResponse:
        wanted = int(request.match_info["asset_id"])
        for release in self.releases:
            for asset in release["assets"]:
                if asset["id"] == wanted and asset["name"] == request.match_info["filename"]:
                    return web.Response(body=asset["data"], content_type="application/octet-stream")
        return web.Response(status=404, text="Not Found")

    def file_text(self, path: str) -> str | None:
        stored = self.files.get(path)
        return stored["raw"].decode("utf-8") if stored else None

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method in ("POST", "PATCH", "PUT")]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
