"""A tiny stand-in for the Hugging Face Hub's HTTP API on 127.0.0.1, for tests only.

It answers the calls `huggingface_hub.snapshot_download` makes (repo info by revision, the
file tree, HEAD/GET of each file) for repos held in memory, the calls `upload_folder` makes
(create repo, preupload, an NDJSON commit of regular files), and the Hub's error responses
(`X-Error-Code: RepoNotFound | RevisionNotFound | GatedRepo`) for the others. The client
library is the real one; only the server is ours.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import yaml


class FakeHub:
    """Serves `repos[repo_id] = {path: bytes}` at one commit each; `errors[repo_id] = (status, code)`."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.errors: dict[str, tuple[int, str]] = {}
        self.pinned_commits: dict[str, str] = {}  # repo_id -> the commit hash it is served at
        self.requests: list[str] = []
        self.authorizations: list[str | None] = []  # each request's Authorization header, in order
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_HEAD(self) -> None:
                hub._answer(self, with_body=False)

            def do_GET(self) -> None:
                hub._answer(self, with_body=True)

            def do_POST(self) -> None:
                hub._receive(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add_folder(self, repo_id: str, folder: Path, commit: str | None = None) -> None:
        """Serve `folder`'s files as `repo_id`, at `commit` (a 40-hex hash; default: one derived from the files)."""
        self.repos[repo_id] = {
            p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
        }
        if commit is not None:
            self.pinned_commits[repo_id] = commit

    def commit(self, repo_id: str) -> str:
        if repo_id in self.pinned_commits:
            return self.pinned_commits[repo_id]
        digest = hashlib.sha1(repo_id.encode())
        for name, data in sorted(self.repos.get(repo_id, {}).items()):
            digest.update(name.encode() + hashlib.sha1(data).digest())
        return digest.hexdigest()

    def _receive(self, handler: BaseHTTPRequestHandler) -> None:
        path = unquote(urlparse(handler.path).path)
        self.requests.append(f"POST {path}")
        self.authorizations.append(handler.headers.get("Authorization"))
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "validate-yaml"]:  # the model card's metadata, checked before a commit
            content = json.loads(body)["content"]
            try:
                metadata = yaml.safe_load(content.split("---")[1]) if content.startswith("---") else {}
            except yaml.YAMLError as exc:
                return self._send(handler, 400, str(exc).encode(), {}, True)
            status = 200 if isinstance(metadata, dict) else 400
            return self._send(handler, status, json.dumps({"warnings": []}).encode(), {}, True)
        if parts[:3] == ["api", "repos", "create"]:
            request = json.loads(body)
            repo_id = f"{request['organization']}/{request['name']}" if request.get("organization") else request["name"]
            status = 409 if repo_id in self.repos else 200
            self.repos.setdefault(repo_id, {})
            return self._send(handler, status, json.dumps({"url": f"{self.endpoint}/{repo_id}"}).encode(), {}, True)
        repo_id, action = "/".join(parts[2:4]), parts[4]
        if action == "preupload":
            files = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in json.loads(body)["files"]
            ]
            return self._send(handler, 200, json.dumps({"files": files}).encode(), {}, True)
        if action == "commit":
            for line in body.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    self.repos[repo_id][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            commit = self.commit(repo_id)
            answer = {"commitUrl": f"{self.endpoint}/{repo_id}/commit/{commit}", "commitOid": commit}
            return self._send(handler, 200, json.dumps(answer).encode(), {}, True)
        return self._send(handler, 404, b"{}", {}, True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, handler: BaseHTTPRequestHandler, with_body: bool) -> None:
        path = unquote(urlparse(handler.path).path)
        self.requests.append(f"{handler.command} {path}")
        self.authorizations.append(handler.headers.get("Authorization"))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"]:
            repo_id, rest = "/".join(parts[2:4]), parts[4:]
        else:
            repo_id, rest = "/".join(parts[0:2]), parts[2:]
        if repo_id in self.errors:
            status, code = self.errors[repo_id]
            return self._send(handler, status, json.dumps({"error": code}).encode(), {"X-Error-Code": code}, with_body)
        files = self.repos.get(repo_id)
        if files is None:
            return self._send(handler, 404, b'{"error": "not found"}', {"X-Error-Code": "RepoNotFound"}, with_body)
        commit = self.commit(repo_id)
        if rest[:1] == ["revision"]:
            if rest[1] not in ("main", commit):
                return self._send(handler, 404, b"{}", {"X-Error-Code": "RevisionNotFound"}, with_body)
            info = {"id": repo_id, "sha": commit, "siblings": [{"rfilename": name} for name in files]}
            return self._send(handler, 200, json.dumps(info).encode(), {}, with_body)
        if rest[:1] == ["tree"]:
            tree = [
                {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                for name, data in files.items()
            ]
            return self._send(handler, 200, json.dumps(tree).encode(), {}, with_body)
        if rest[:1] == ["resolve"] and "/".join(rest[2:]) in files:
            data = files["/".join(rest[2:])]
            headers = {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}
            return self._send(handler, 200, data, headers, with_body)
        return self._send(handler, 404, b"{}", {"X-Error-Code": "EntryNotFound"}, with_body)

    @staticmethod
    def _send(handler, status: int, body: bytes, headers: dict[str, str], with_body: bool) -> None:
        handler.send_response(status)
        for key, value in {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}.items():
            handler.send_header(key, value)
        handler.end_headers()
        if with_body:
            handler.wfile.write(body)
