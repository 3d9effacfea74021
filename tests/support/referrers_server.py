"""A minimal OCI registry with the referrers API (distribution-spec v1.1), for tests only.

Debian bookworm ships no registry with `GET /v2/<name>/referrers/<digest>` (docker-registry 2.8
predates it; zot and distribution 3 are not packaged), so this stdlib http.server on 127.0.0.1
implements the part of the spec xarch uses: the /v2/ probe, blob HEAD/GET, monolithic uploads
(POST then PUT ?digest=), manifest PUT/GET/HEAD by tag or digest (PUT of a manifest with a
`subject` answers `OCI-Subject`), and the referrers listing with the `artifactType` filter
(`OCI-Filters-Applied`). Everything is kept in memory; nothing is checked beyond the digests.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass
class _State:
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)  # (repo, ref)
    uploads: dict[str, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)


_NAME = r"(?P<name>[a-z0-9._/-]+?)"


class ReferrersRegistry:
    """start() in a thread; `host` is 127.0.0.1:PORT; `state.requests` records "METHOD path"."""

    def __init__(self) -> None:
        self.state = _State()
        state = self.state

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _route(self) -> None:
                parts = urlsplit(self.path)
                path, query = parts.path, parse_qs(parts.query)
                state.requests.append(f"{self.command} {path}")
                body = self._body() if self.command in ("PUT", "POST", "PATCH") else b""
                if path == "/v2/":
                    return self._send(200, b"{}", {"Content-Type": "application/json"})
                match = re.fullmatch(rf"/v2/{_NAME}/blobs/uploads/(?P<id>[^/]*)", path)
                if match:
                    return self._upload(match["name"], match["id"], query, body)
                match = re.fullmatch(rf"/v2/{_NAME}/blobs/(?P<digest>sha256:[0-9a-f]{{64}})", path)
                if match:
                    data = state.blobs.get(match["digest"])
                    if data is None:
                        return self._send(404)
                    return self._send(200, data, {"Docker-Content-Digest": match["digest"]})
                match = re.fullmatch(rf"/v2/{_NAME}/manifests/(?P<ref>[^/]+)", path)
                if match:
                    return self._manifest(match["name"], match["ref"], body)
                match = re.fullmatch(rf"/v2/{_NAME}/referrers/(?P<digest>sha256:[0-9a-f]{{64}})", path)
                if match and self.command == "GET":
                    return self._referrers(match["name"], match["digest"], query)
                return self._send(404)

            def _upload(self, name: str, upload: str, query: dict[str, list[str]], body: bytes) -> None:
                if self.command == "POST":
                    if "mount" in query:  # no cross-repository mounts: open a session instead
                        pass
                    new = uuid.uuid4().hex
                    state.uploads[new] = b""
                    return self._send(202, headers={"Location": f"/v2/{name}/blobs/uploads/{new}"})
                if upload not in state.uploads:
                    return self._send(404)
                if self.command == "PATCH":
                    state.uploads[upload] += body
                    return self._send(202, headers={"Location": f"/v2/{name}/blobs/uploads/{upload}"})
                if self.command == "PUT":
                    data = state.uploads.pop(upload) + body
                    digest = "sha256:" + hashlib.sha256(data).hexdigest()
                    if query.get("digest", [""])[0] != digest:
                        return self._send(400)
                    state.blobs[digest] = data
                    return self._send(201, headers={"Location": f"/v2/{name}/blobs/{digest}"})
                if self.command == "DELETE":
                    state.uploads.pop(upload, None)
                    return self._send(204)
                return self._send(405)

            def _manifest(self, name: str, ref: str, body: bytes) -> None:
                if self.command == "PUT":
                    digest = "sha256:" + hashlib.sha256(body).hexdigest()
                    if ref.startswith("sha256:") and ref != digest:
                        return self._send(400)
                    media_type = self.headers.get("Content-Type", "")
                    state.manifests[(name, digest)] = (body, media_type)
                    state.manifests[(name, ref)] = (body, media_type)
                    headers = {"Docker-Content-Digest": digest, "Location": f"/v2/{name}/manifests/{digest}"}
                    subject = json.loads(body).get("subject")
                    if isinstance(subject, dict):
                        headers["OCI-Subject"] = str(subject.get("digest"))
                    return self._send(201, headers=headers)
                found = state.manifests.get((name, ref))
                if found is None:
                    return self._send(404)
                data, media_type = found
                digest = "sha256:" + hashlib.sha256(data).hexdigest()
                return self._send(200, data, {"Content-Type": media_type, "Docker-Content-Digest": digest})

            def _referrers(self, name: str, digest: str, query: dict[str, list[str]]) -> None:
                wanted = query.get("artifactType", [None])[0]
                listed: dict[str, dict[str, Any]] = {}
                for (repo, ref), (data, media_type) in sorted(state.manifests.items()):
                    if repo != name or not ref.startswith("sha256:"):
                        continue
                    manifest = json.loads(data)
                    if (manifest.get("subject") or {}).get("digest") != digest:
                        continue
                    config = manifest.get("config") or {}
                    artifact_type = manifest.get("artifactType") or config.get("mediaType")
                    if wanted and artifact_type != wanted:
                        continue
                    entry: dict[str, Any] = {"mediaType": media_type, "digest": ref, "size": len(data),
                                             "artifactType": artifact_type}
                    if manifest.get("annotations"):
                        entry["annotations"] = manifest["annotations"]
                    listed[ref] = entry
                body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                   "manifests": list(listed.values())}).encode()
                headers = {"Content-Type": OCI_INDEX}
                if wanted:
                    headers["OCI-Filters-Applied"] = "artifactType"
                return self._send(200, body, headers)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _route  # noqa: N815

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def referrers_registry() -> Iterator[ReferrersRegistry]:
    """A registry with the referrers API on 127.0.0.1, in this process."""
    running = ReferrersRegistry()
    running.start()
    yield running
    running.stop()
