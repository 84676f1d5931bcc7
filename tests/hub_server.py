"""A small Hugging Face Hub–compatible HTTP server that stands in for the Hub in tests.

The real Hub cannot be reached from the test machines, and no Hub-compatible server with uploads exists as a
package, so this module implements the part of the Hub HTTP API that `huggingface_hub` (2.x, with
`HF_HUB_DISABLE_XET=1`) and `datasets` call when pushing and loading a repository:

- `POST /api/repos/create`, `POST /api/validate-yaml`
- `GET /api/{type}s/{repo}` and `GET /api/{type}s/{repo}/revision/{rev}` (repo info, `sha`, `siblings`)
- `POST /api/{type}s/{repo}/preupload/{rev}` (upload mode + remote oid, so unchanged files are skipped)
- `POST /{prefix}{repo}.git/info/lfs/objects/batch`, `PUT /lfs-upload/{oid}`, `POST /lfs-verify` (basic transfer)
- `POST /api/{type}s/{repo}/commit/{rev}` (NDJSON; applied atomically: all operations or none)
- `GET|HEAD /{prefix}{repo}/resolve/{rev}/{path}` (ETag, X-Repo-Commit, X-Linked-Etag, X-Linked-Size, ranges)
- `GET /api/{type}s/{repo}/tree/{rev}[/{path}]?recursive=`, `POST /api/{type}s/{repo}/paths-info/{rev}`
- `GET /api/{type}s/{repo}/commits/{rev}`, `GET /api/{type}s/{repo}/refs`

It is test code only: the product talks to the real Hub. State lives in memory. Use it as a context manager::

    with HubServer() as hub:
        env = hub.environ()  # HF_ENDPOINT, HF_HUB_DISABLE_XET=1, ...
        ...
        hub.commit_count("org/pairs", repo_type="dataset")

Failures can be injected to check that a failed push leaves the remote as it was: `hub.fail["commit"] = 1`
answers the next commit with a 500 (after the LFS uploads succeeded); `hub.fail["lfs-upload"] = 1` answers the
next LFS upload with a 403.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (
    ".parquet",
    ".arrow",
    ".png",
    ".jpg",
    ".jpeg",
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".gguf",
    ".zip",
    ".gz",
    ".sqlite",
    ".db",
    ".npy",
)
LFS_THRESHOLD = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES).encode()


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob (sha1 of `blob <size>\\0<content>`), as the Hub reports for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class Blob:
    content: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def oid(self) -> str:
        """git oid: of the content for regular files, of the pointer file for LFS files."""
        return git_blob_oid(lfs_pointer(self.sha256, len(self.content)) if self.lfs else self.content)

    def entry(self, path: str) -> dict:
        out = {"type": "file", "oid": self.oid, "size": len(self.content), "path": path}
        if self.lfs:
            pointer = lfs_pointer(self.sha256, len(self.content))
            out["lfs"] = {"oid": self.sha256, "size": len(self.content), "pointerSize": len(pointer)}
        return out


@dataclass
class Commit:
    oid: str
    title: str
    date: str
    files: dict[str, Blob]


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    commits: list[Commit] = field(default_factory=list)
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit oid

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision, revision)
        for commit in self.commits:
            if commit.oid == oid:
                return commit
        return None


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


class HubServer:
    """The in-memory Hub. Start with `start()` (or `with`), stop with `stop()`; `url` is its endpoint."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.fail: dict[str, int] = {}
        self.requests: list[tuple[str, str, int]] = []
        self.lock = threading.RLock()
        self._clock = 1_700_000_000.0
        handler = type("Handler", (_Handler,), {"hub": self})
        self.httpd = _QuietServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> HubServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def environ(self) -> dict[str, str]:
        """Environment variables that point huggingface_hub and datasets at this server (read at import time)."""
        return {
            "HF_ENDPOINT": self.url,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_OFFLINE": "0",
            "HF_DATASETS_OFFLINE": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_TOKEN": "hf_test_token",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        }

    def patch_client(self, monkeypatch, *, cache_dir) -> None:
        """Point this process's already imported huggingface_hub at the server (pytest `monkeypatch`).

        `HF_ENDPOINT` is read when huggingface_hub is imported, so in-process tests patch its constants instead;
        a subprocess gets `environ()` before it imports anything.
        """
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "ENDPOINT", self.url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", self.url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache_dir))

    # -- inspection (for tests) --------------------------------------------------------------------------------
    def repo(self, repo_id: str, *, repo_type: str = "dataset") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def commit_count(self, repo_id: str, *, repo_type: str = "dataset") -> int:
        return len(self.repo(repo_id, repo_type=repo_type).commits)

    def files(self, repo_id: str, *, repo_type: str = "dataset", revision: str = "main") -> dict[str, bytes]:
        commit = self.repo(repo_id, repo_type=repo_type).resolve(revision)
        if commit is None:
            raise KeyError(revision)
        return {path: blob.content for path, blob in commit.files.items()}

    # -- state changes -----------------------------------------------------------------------------------------
    def _new_commit(self, repo: Repo, branch: str, title: str, files: dict[str, Blob]) -> Commit:
        self._clock += 1
        parent = repo.branches.get(branch, "")
        digest = hashlib.sha1(f"{repo.repo_id}\0{parent}\0{title}\0{self._clock}".encode())
        for path in sorted(files):
            digest.update(f"{path}\0{files[path].oid}\0".encode())
        commit = Commit(oid=digest.hexdigest(), title=title, date=_iso(self._clock), files=files)
        repo.commits.append(commit)
        repo.branches[branch] = commit.oid
        return commit

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise HubError(409, "You already created this repo", "RepoExists")
            repo = Repo(repo_id=repo_id, repo_type=repo_type, private=private)
            self._new_commit(repo, "main", "initial commit", {".gitattributes": Blob(GITATTRIBUTES, lfs=False)})
            self.repos[(repo_type, repo_id)] = repo
            return repo

    def get_repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def get_commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # Clients closing keep-alive connections are normal; anything else is a server bug: re-raise loudly.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


def _split_repo(parts: list[str]) -> tuple[str, list[str]]:
    """('ns', 'name', rest...) -> ('ns/name', rest)."""
    if len(parts) < 2:
        raise HubError(404, "Repository not found", "RepoNotFound")
    return f"{parts[0]}/{parts[1]}", parts[2:]


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - keep the test output quiet
        pass

    # -- plumbing ----------------------------------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, *, head=False):
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Type", "application/json")
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Date", formatdate(usegmt=True))
        self.end_headers()
        if not head and body and self.command != "HEAD":
            self.wfile.write(body)
        self.hub.requests.append((self.command, self.path, status))

    def _json(self, status: int, payload, headers: dict[str, str] | None = None):
        self._send(status, json.dumps(payload).encode(), headers)

    def _dispatch(self, method: str):
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        body = self._body() if method in ("POST", "PUT") else b""
        try:
            self._route(method, parts, query, body)
        except HubError as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._json(err.status, {"error": err.message}, headers)

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    # -- routing -----------------------------------------------------------------------------------------------
    def _route(self, method: str, parts: list[str], query: dict[str, str], body: bytes):
        hub = self.hub
        if parts[:1] == ["api"]:
            if parts[1:3] == ["repos", "create"] and method == "POST":
                return self._create_repo(json.loads(body or b"{}"))
            if parts[1:2] == ["validate-yaml"] and method == "POST":
                return self._json(200, {"errors": [], "warnings": []})
            if parts[1:2] == ["whoami-v2"]:
                return self._json(200, {"name": "test-user", "type": "user", "orgs": [], "auth": {}})
            if len(parts) >= 4 and parts[1] in ("models", "datasets", "spaces"):
                repo_type = parts[1][:-1]
                repo_id, rest = _split_repo(parts[2:])
                return self._repo_api(method, repo_type, repo_id, rest, query, body)
            raise HubError(404, f"unknown API route /{'/'.join(parts)}")
        if parts[:1] == ["lfs-upload"] and method == "PUT":
            return self._lfs_upload(parts[1], body)
        if parts[:1] == ["lfs-verify"] and method == "POST":
            oid = json.loads(body)["oid"]
            if oid not in hub.lfs_objects:
                raise HubError(404, f"LFS object {oid} not found")
            return self._json(200, {"success": True})
        # git-lfs batch and resolve: /{datasets/}{ns}/{name}(.git/info/lfs/objects/batch | /resolve/{rev}/{path})
        repo_type = "model"
        if parts[:1] in (["datasets"], ["spaces"]):
            repo_type, parts = parts[0][:-1], parts[1:]
        if len(parts) >= 2 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(repo_type, f"{parts[0]}/{parts[1][:-4]}", json.loads(body))
        repo_id, rest = _split_repo(parts)
        if len(rest) >= 3 and rest[0] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(repo_type, repo_id, rest[1], "/".join(rest[2:]), head=method == "HEAD")
        raise HubError(404, f"unknown route /{'/'.join(parts)}")

    def _create_repo(self, payload: dict):
        name, org = payload.get("name"), payload.get("organization")
        repo_type = payload.get("type") or "model"
        if not name or not org:
            raise HubError(400, "name and organization are required by this test server")
        repo_id = f"{org}/{name}"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.hub.url}/{prefix}{repo_id}"
        try:
            self.hub.create_repo(repo_type, repo_id, payload.get("visibility") == "private")
        except HubError as err:  # the Hub answers 409 with the existing repo's url
            self._json(err.status, {"error": err.message, "url": url}, {"X-Error-Message": err.message})
            return
        self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _repo_api(self, method, repo_type, repo_id, rest, query, body):
        hub = self.hub
        with hub.lock:
            repo = hub.get_repo(repo_type, repo_id)
            if method == "GET" and (not rest or rest[0] == "revision"):
                commit = hub.get_commit(repo, rest[1] if len(rest) > 1 else "main")
                return self._json(200, self._info(repo, commit))
            if method == "POST" and rest[:1] == ["preupload"]:
                commit = hub.get_commit(repo, rest[1])
                return self._json(200, {"files": [self._preupload(commit, f) for f in json.loads(body)["files"]]})
            if method == "POST" and rest[:1] == ["commit"]:
                return self._commit(repo, rest[1], body)
            if method == "GET" and rest[:1] == ["tree"]:
                commit = hub.get_commit(repo, rest[1])
                return self._json(
                    200, self._tree(commit, "/".join(rest[2:]), query.get("recursive", "").lower() == "true")
                )
            if method == "POST" and rest[:1] == ["paths-info"]:
                commit = hub.get_commit(repo, rest[1])
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    paths = json.loads(body).get("paths", [])
                else:
                    paths = parse_qs(body.decode()).get("paths", [])
                return self._json(200, self._paths_info(commit, paths))
            if method == "GET" and rest[:1] == ["commits"]:
                head = hub.get_commit(repo, rest[1])
                history = repo.commits[: repo.commits.index(head) + 1][::-1]
                return self._json(
                    200,
                    [{"id": c.oid, "title": c.title, "message": "", "authors": [], "date": c.date} for c in history],
                )
            if method == "POST" and rest[:1] == ["branch"]:
                branch = "/".join(rest[1:])
                if branch in repo.branches:
                    raise HubError(409, f"Reference {branch} already exists", "RefAlreadyExists")
                start = json.loads(body or b"{}").get("startingPoint") or "main"
                repo.branches[branch] = hub.get_commit(repo, start).oid
                return self._json(200, {})
            if method == "GET" and rest[:1] == ["refs"]:
                return self._json(
                    200,
                    {
                        "branches": [
                            {"name": b, "ref": f"refs/heads/{b}", "targetCommit": oid}
                            for b, oid in repo.branches.items()
                        ],
                        "tags": [],
                        "converts": [],
                    },
                )
        raise HubError(404, f"unknown repo route {'/'.join(rest)}")

    def _info(self, repo: Repo, commit: Commit) -> dict:
        siblings = []
        for path in sorted(commit.files):
            blob = commit.files[path]
            sibling = {"rfilename": path, "size": len(blob.content), "blobId": blob.oid}
            if blob.lfs:
                entry = blob.entry(path)["lfs"]
                sibling["lfs"] = {"size": entry["size"], "sha256": entry["oid"], "pointerSize": entry["pointerSize"]}
            siblings.append(sibling)
        return {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.oid,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "lastModified": commit.date,
            "createdAt": repo.commits[0].date,
            "siblings": siblings,
        }

    def _preupload(self, commit: Commit, file: dict) -> dict:
        path, size = file["path"], int(file["size"])
        lfs = size > LFS_THRESHOLD or path.lower().endswith(LFS_SUFFIXES)
        remote = commit.files.get(path)
        oid = None
        if remote is not None:
            oid = remote.sha256 if remote.lfs else remote.oid
        return {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}

    def _lfs_batch(self, repo_type: str, repo_id: str, payload: dict):
        self.hub.get_repo(repo_type, repo_id)
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            entry = {"oid": oid, "size": size}
            if oid not in self.hub.lfs_objects:
                entry["authenticated"] = True
                entry["actions"] = {
                    "upload": {"href": f"{self.hub.url}/lfs-upload/{oid}"},
                    "verify": {"href": f"{self.hub.url}/lfs-verify"},
                }
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_upload(self, oid: str, body: bytes):
        hub = self.hub
        with hub.lock:
            if hub.fail.get("lfs-upload", 0) > 0:
                hub.fail["lfs-upload"] -= 1
                raise HubError(403, "injected LFS upload failure")
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, f"uploaded content does not match sha256 {oid}")
        with hub.lock:
            hub.lfs_objects[oid] = body
        self._send(200, b"", {"ETag": f'"{oid}"'})

    def _commit(self, repo: Repo, revision: str, body: bytes):
        hub = self.hub
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "commit payload must start with a header line")
        header = lines[0]["value"]
        head = hub.get_commit(repo, revision)
        if revision not in repo.branches:
            raise HubError(400, f"can only commit to a branch, got {revision}")
        if header.get("parentCommit") and header["parentCommit"] != head.oid:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            path = value["path"]
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"unsupported encoding for {path}")
                files[path] = Blob(base64.b64decode(value["content"]), lfs=False)
            elif key == "lfsFile":
                content = hub.lfs_objects.get(value["oid"])
                if content is None:
                    raise HubError(422, f"LFS object {value['oid']} for {path} was never uploaded")
                files[path] = Blob(content, lfs=True)
            elif key == "deletedFile":
                if path not in files:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                del files[path]
            elif key == "deletedFolder":
                prefix = path.rstrip("/") + "/"
                files = {p: b for p, b in files.items() if not p.startswith(prefix)}
            else:
                raise HubError(400, f"unknown commit operation {key}")
        if hub.fail.get("commit", 0) > 0:
            hub.fail["commit"] -= 1
            raise HubError(500, "injected commit failure")
        commit = hub._new_commit(repo, revision, header.get("summary", ""), files)
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        self._json(
            200,
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{hub.url}/{prefix}{repo.repo_id}/commit/{commit.oid}",
                "pullRequestUrl": None,
            },
        )

    def _tree(self, commit: Commit, path: str, recursive: bool) -> list[dict]:
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in commit.files):
            raise HubError(404, f"{path} does not exist", "EntryNotFound")
        entries: dict[str, dict] = {}
        for file_path in sorted(commit.files):
            if not file_path.startswith(prefix):
                continue
            rest = file_path[len(prefix) :].split("/")
            for depth in range(1, len(rest)):
                folder = prefix + "/".join(rest[:depth])
                if recursive or depth == 1:
                    entries.setdefault(folder, self._folder(commit, folder))
                if not recursive:
                    break
            else:
                entries[file_path] = commit.files[file_path].entry(file_path)
        return [entries[k] for k in sorted(entries)]

    @staticmethod
    def _folder(commit: Commit, folder: str) -> dict:
        digest = hashlib.sha1()
        for p in sorted(commit.files):
            if p.startswith(folder + "/"):
                digest.update(f"{p}\0{commit.files[p].oid}".encode())
        return {"type": "directory", "oid": digest.hexdigest(), "size": 0, "path": folder}

    def _paths_info(self, commit: Commit, paths: list[str]) -> list[dict]:
        out = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                out.append(commit.files[path].entry(path))
            elif any(p.startswith(path + "/") for p in commit.files) or path == "":
                out.append(self._folder(commit, path))
        return out

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str, *, head: bool):
        hub = self.hub
        with hub.lock:
            repo = hub.get_repo(repo_type, repo_id)
            commit = hub.get_commit(repo, revision)
            blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        etag = blob.sha256 if blob.lfs else blob.oid
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{etag}"',
            "X-Repo-Commit": commit.oid,
            "Accept-Ranges": "bytes",
        }
        if blob.lfs:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(len(blob.content))
        content = blob.content
        status = 200
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if match and content:
            start_s, end_s = match.groups()
            if start_s == "":
                start, end = max(0, len(content) - int(end_s)), len(content) - 1
            else:
                start = int(start_s)
                end = min(int(end_s), len(content) - 1) if end_s else len(content) - 1
            if start >= len(content):
                self._send(416, b"", {"Content-Range": f"bytes */{len(content)}"}, head=head)
                return
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            content, status = content[start : end + 1], 206
        self._send(status, content, headers, head=head)


def tree_digest(repo_dir) -> str:
    """sha256 over every file's relative path and bytes: equal digests mean byte-identical folders (tests of the
    dataset writer's byte-for-byte determinism)."""
    import hashlib
    from pathlib import Path

    repo_dir = Path(repo_dir)
    digest = hashlib.sha256()
    files = [p for p in repo_dir.rglob("*") if p.is_file()]
    for path in sorted(p for p in files if not any(x.startswith(".") for x in p.relative_to(repo_dir).parts)):
        digest.update(
            path.relative_to(repo_dir).as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest()
        )
    return digest.hexdigest()


if __name__ == "__main__":  # pragma: no cover - manual use: python tests/hub_server.py
    import sys

    server = HubServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
