"""A local HTTP server that speaks the parts of the Hugging Face Hub protocol that
``huggingface_hub`` uses to download and upload model files.

It holds repositories in memory and answers, like the real hub does:

* ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}``: ``X-Repo-Commit`` and
  ``ETag`` headers; small ("regular") files are served directly with their git blob sha1
  as ETag; large ("LFS") files answer ``302`` to a blob URL on another origin (the CDN)
  with ``X-Linked-Etag`` (their sha256) and ``X-Linked-Size``. Missing repos, revisions
  and files answer 404 with the ``X-Error-Code`` header the client maps to its errors.
* ``POST /api/repos/create``, ``POST /api/validate-yaml`` (model card front matter),
  ``POST /api/models/{repo_id}/preupload/{revision}`` and
  ``POST /api/models/{repo_id}/commit/{revision}`` (NDJSON commit with base64 files): what
  ``HfApi.create_repo`` and ``HfApi.create_commit`` call. The preupload answer puts every
  file in "regular" mode, so no LFS/Xet storage protocol is needed.

Tests can count requests (:attr:`FakeHub.hits`), make paths fail with a status code
(:attr:`FakeHub.fail`), stall responses (:attr:`FakeHub.stall`), serve bytes that do
not match the advertised hash (:attr:`FakeHub.tamper`) and check tokens like the hub
(:attr:`FakeHub.tokens`: a request with any other token, or an upload with none, answers
``401``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".keras", ".h5", ".bin", ".safetensors")


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob (what the hub uses as ETag of regular files)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Repo:
    """One repository: commits (sha -> files) and refs (branch -> sha)."""

    private: bool = False
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)


class FakeHub:
    """An in-memory hub served on ``127.0.0.1`` (API) with blobs on ``localhost`` (CDN)."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.blobs: dict[str, bytes] = {}
        self.hits: Counter[tuple[str, str]] = Counter()
        self.fail: dict[str, int] = {}  # path substring -> status code
        self.stall: dict[str, float] = {}  # path substring -> seconds to wait before answering
        self.tamper: set[str] = set()  # sha256 of blobs served with one byte changed
        self.auth: list[str | None] = []
        self.tokens: set[str] = set()  # if any: the only valid tokens (uploads need one)
        self.cards: list[str] = []  # README.md contents sent to /api/validate-yaml
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cdn(self) -> str:
        return f"http://localhost:{self.port}"

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- repository content -------------------------------------------------------------
    def commit(
        self, repo_id: str, files: dict[str, bytes], message: str = "upload", *,
        revision: str = "main", private: bool | None = None,
    ) -> str:
        """Add a commit on ``revision`` holding ``files`` on top of its parent; returns its sha."""
        with self._lock:
            repo = self.repos.setdefault(repo_id, Repo())
            if private is not None:
                repo.private = private
            parent = repo.refs.get(revision)
            tree = dict(repo.commits[parent]) if parent else {}
            tree.update(files)
            digest = hashlib.sha1(
                json.dumps([parent, message, sorted((k, sha256(v)) for k, v in tree.items())])
                .encode()
            ).hexdigest()
            repo.commits[digest] = tree
            repo.refs[revision] = digest
            repo.messages[digest] = message
            for data in tree.values():
                self.blobs[sha256(data)] = data
            return digest

    def hit_count(self, fragment: str, method: str | None = None) -> int:
        """Number of requests whose path contains ``fragment``."""
        return sum(
            n for (m, path), n in self.hits.items()
            if fragment in path and (method is None or m == method)
        )

    # -- request handling -----------------------------------------------------------------
    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        path = unquote(urlsplit(handler.path).path)
        with self._lock:
            self.hits[(method, path)] += 1
            self.auth.append(handler.headers.get("Authorization"))
        for fragment, seconds in self.stall.items():
            if fragment in path:  # not time.sleep: tests may patch it to skip client backoff
                threading.Event().wait(seconds)
        for fragment, status in self.fail.items():
            if fragment in path:
                return _send(handler, status, b"simulated failure", method=method)
        if not self._authorized(handler.headers.get("Authorization"), method):
            message = "Invalid credentials in Authorization header"
            return _send(handler, 401, json.dumps({"error": message}).encode(),
                         {"X-Error-Message": message, "Content-Type": "application/json"},
                         method)
        if path.startswith("/_blobs/"):
            return self._blob(handler, path.rsplit("/", 1)[1], method)
        if method == "POST" and path == "/api/repos/create":
            return self._create_repo(handler)
        if method == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml(handler)
        if method == "POST" and path.startswith("/api/models/"):
            return self._api_post(handler, path[len("/api/models/"):])
        if "/resolve/" in path and method in ("GET", "HEAD"):
            return self._resolve(handler, path, method)
        return _send(handler, 404, b"not found", method=method)

    def _authorized(self, header: str | None, method: str) -> bool:
        """Whether the ``Authorization`` header passes :attr:`tokens` (always, if empty)."""
        if not self.tokens:
            return True
        if header is None:
            return method != "POST"
        return header.removeprefix("Bearer ") in self.tokens

    def _resolve(self, handler: BaseHTTPRequestHandler, path: str, method: str) -> None:
        repo_id, _, rest = path.lstrip("/").partition("/resolve/")
        revision, _, filename = rest.partition("/")
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and not handler.headers.get("Authorization")):
            return _send(handler, 401, b"repo not found", {"X-Error-Code": "RepoNotFound"}, method)
        sha = revision if revision in repo.commits else repo.refs.get(revision)
        if sha is None:
            return _send(handler, 404, b"revision not found",
                         {"X-Error-Code": "RevisionNotFound"}, method)
        files = repo.commits[sha]
        if filename not in files:
            return _send(handler, 404, b"entry not found",
                         {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": sha}, method)
        data = files[filename]
        headers = {"X-Repo-Commit": sha}
        if filename.endswith(LFS_SUFFIXES):
            digest = sha256(data)
            headers.update({
                "Location": f"{self.cdn}/_blobs/{digest}",
                "X-Linked-Etag": f'"{digest}"',
                "X-Linked-Size": str(len(data)),
                "ETag": f'"{git_blob_sha1(data)}"',
            })
            return _send(handler, 302, b"", headers, method)
        headers["ETag"] = f'"{git_blob_sha1(data)}"'
        return _send(handler, 200, data, headers, method)

    def _blob(self, handler: BaseHTTPRequestHandler, digest: str, method: str) -> None:
        data = self.blobs.get(digest)
        if data is None:
            return _send(handler, 404, b"no such blob", method=method)
        if digest in self.tamper:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return _send(handler, 200, data, {"ETag": f'"{digest}"'}, method)

    def _create_repo(self, handler: BaseHTTPRequestHandler) -> None:
        payload = _read_json(handler)
        repo_id = f"{payload['organization']}/{payload['name']}"
        with self._lock:
            repo = self.repos.setdefault(repo_id, Repo())
            repo.private = payload.get("visibility") == "private" or bool(payload.get("private"))
        body = json.dumps({"url": f"{self.endpoint}/{repo_id}", "name": repo_id}).encode()
        _send(handler, 200, body, {"Content-Type": "application/json"})

    def _validate_yaml(self, handler: BaseHTTPRequestHandler) -> None:
        """Check a README.md's YAML front matter, as the hub does before a commit."""
        import yaml

        content = _read_json(handler)["content"]
        errors = []
        if content.startswith("---\n"):
            try:
                meta = yaml.safe_load(content[4:].split("\n---\n", 1)[0])
                if not isinstance(meta, dict):
                    errors.append({"message": "metadata must be a mapping"})
            except yaml.YAMLError as exc:
                errors.append({"message": f"invalid YAML: {exc}"})
        self.cards.append(content)
        _send(handler, 400 if errors else 200,
              json.dumps({"errors": errors, "warnings": []}).encode(),
              {"Content-Type": "application/json"})

    def _api_post(self, handler: BaseHTTPRequestHandler, rest: str) -> None:
        for action in ("/preupload/", "/commit/"):
            if action in rest:
                repo_id, _, revision = rest.partition(action)
                break
        else:
            return _send(handler, 404, b"not found")
        if repo_id not in self.repos:
            return _send(handler, 404, b"repo not found", {"X-Error-Code": "RepoNotFound"})
        if action == "/preupload/":
            files = _read_json(handler)["files"]
            answer = {"files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                for f in files
            ]}
            return _send(handler, 200, json.dumps(answer).encode(),
                         {"Content-Type": "application/json"})
        length = int(handler.headers.get("Content-Length") or 0)
        lines = [json.loads(line) for line in handler.rfile.read(length).splitlines() if line]
        message = "upload"
        files: dict[str, bytes] = {}
        for item in lines:
            if item["key"] == "header":
                message = item["value"]["summary"]
            elif item["key"] == "file":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            else:
                return _send(handler, 400, f"unsupported commit key {item['key']}".encode())
        sha = self.commit(repo_id, files, message, revision=unquote(revision))
        body = json.dumps({
            "commitUrl": f"{self.endpoint}/{repo_id}/commit/{sha}", "commitOid": sha,
        }).encode()
        _send(handler, 200, body, {"Content-Type": "application/json"})


def _read_json(handler: BaseHTTPRequestHandler) -> Any:
    length = int(handler.headers.get("Content-Length") or 0)
    return json.loads(handler.rfile.read(length) or b"{}")


def _send(
    handler: BaseHTTPRequestHandler, status: int, body: bytes,
    headers: dict[str, str] | None = None, method: str = "GET",
) -> None:
    try:
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if method != "HEAD" and body:
            handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts)
        pass


def _make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_HEAD(self) -> None:
            hub.handle(self, "HEAD")

        def do_GET(self) -> None:
            hub.handle(self, "GET")

        def do_POST(self) -> None:
            hub.handle(self, "POST")

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    return Handler
