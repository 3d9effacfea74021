"""Real registries for tests: Debian's `docker-registry` on 127.0.0.1, plain, htpasswd or TLS.

Also a hand-made OCI layout builder (so registry tests do not depend on the build pipeline)
and a small HTTP proxy that answers 503 to its first N requests (to test retries against the
real registry behind it).
"""

from __future__ import annotations

import base64
import gzip
import http.server
import io
import json
import random
import re
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.needs import need_tool
from xarch.oci.digest import OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST, Descriptor, canonical_json
from xarch.oci.index import build_index
from xarch.registry.auth import Credentials
from xarch.registry.client import Settings

PLATFORMS = {
    "amd64": {"architecture": "amd64", "os": "linux"},
    "arm64": {"architecture": "arm64", "os": "linux"},
    "arm/v7": {"architecture": "arm", "os": "linux", "variant": "v7"},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Registry:
    """A docker-registry process; stop() and start() keep the same storage, port and secret."""

    workdir: Path
    port: int
    username: str | None = None
    password: str | None = None
    tls_cert: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "registry.log"

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    def write_config(self, htpasswd: Path | None, key: Path | None,
                     token: dict[str, str] | None = None) -> Path:
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text"},
            "storage": {"filesystem": {"rootdirectory": str(self.workdir / "storage")},
                        "delete": {"enabled": True}},
            # A fixed secret: upload-state tokens stay valid across a restart, so uploads can resume.
            "http": {"addr": self.host, "secret": "xarch-test-secret"},
        }
        if htpasswd:
            config["auth"] = {"htpasswd": {"realm": "xarch-test", "path": str(htpasswd)}}
        if token:
            config["auth"] = {"token": token}
        if self.tls_cert and key:
            config["http"]["tls"] = {"certificate": str(self.tls_cert), "key": str(key)}
        path = self.workdir / "config.yml"
        path.write_text(json.dumps(config))  # JSON is YAML
        return path

    def start(self) -> None:
        assert self.process is None
        self.starts += 1
        log = self.log.open("ab")
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(self.workdir / "config.yml")], stdout=log, stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log.read_text()[-2000:]}")
            try:
                with warnings.catch_warnings():  # the readiness probe does not care whose certificate it is
                    warnings.simplefilter("ignore")
                    requests.get(f"{self.scheme}://{self.host}/v2/", timeout=1, verify=False)
                return
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start listening in 15 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


def _start_registry(tmp: Path, *, auth: bool = False, tls: bool = False,
                    token: dict[str, str] | None = None) -> Registry:
    need_tool("docker-registry")
    tmp.mkdir(parents=True, exist_ok=True)
    registry = Registry(tmp, free_port())
    htpasswd = key = None
    if auth:
        need_tool("htpasswd")
        registry.username, registry.password = "alice", "s3cret-Pa55word-xyzzy"
        line = subprocess.run(["htpasswd", "-Bbn", registry.username, registry.password],
                              check=True, capture_output=True, text=True).stdout.strip()
        htpasswd = tmp / "htpasswd"
        htpasswd.write_text(line + "\n")
    if tls:
        need_tool("openssl")
        registry.tls_cert, key = tmp / "cert.pem", tmp / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(registry.tls_cert)],
            check=True, capture_output=True,
        )
    registry.write_config(htpasswd, key, token)
    registry.start()
    return registry


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """A plain-HTTP registry without auth on 127.0.0.1."""
    running = _start_registry(tmp_path / "registry")
    yield running
    running.stop()


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[Registry]:
    """A plain-HTTP registry with htpasswd (bcrypt) Basic auth."""
    running = _start_registry(tmp_path / "registry-auth", auth=True)
    yield running
    running.stop()


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry serving HTTPS with a self-signed certificate for IP 127.0.0.1."""
    running = _start_registry(tmp_path / "registry-tls", tls=True)
    yield running
    running.stop()


# ---- a token service, for the Bearer flow -------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    """A Docker token service: Basic-authenticates alice and signs RS256 JWTs the real registry checks.

    Signing is done by the openssl command (already a test tool), so no JWT library is needed.
    """

    service = "xarch-test-registry"
    issuer = "xarch-test-issuer"

    def __init__(self, workdir: Path, username: str, password: str):
        need_tool("openssl")
        workdir.mkdir(parents=True, exist_ok=True)
        self.key, self.cert = workdir / "token-key.pem", workdir / "token-cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=xarch-token-signer", "-keyout", str(self.key), "-out", str(self.cert)],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.username, self.password = username, password
        self.expected_header = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.requests: list[dict[str, list[str]]] = []
        self.denied: set[str] = set()  # repositories this service grants nothing on
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                pass

            def do_GET(self) -> None:  # noqa: N802 - stdlib's name
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                service.requests.append(query)
                if self.headers.get("Authorization") != service.expected_header:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"token": service.sign(query.get("scope", []))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def sign(self, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")
            if name not in self.denied:  # like real token services: grant what is allowed, drop the rest
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.issuer, "sub": self.username, "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": str(random.getrandbits(64)), "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                                   input=signing_input.encode(), check=True, capture_output=True).stdout
        return f"{signing_input}.{_b64url(signature)}"

    def registry_config(self) -> dict[str, str]:
        return {"realm": self.realm, "service": self.service, "issuer": self.issuer,
                "rootcertbundle": str(self.cert)}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[Registry, TokenService]]:
    """A registry that answers with Bearer challenges, and the token service it trusts."""
    tokens = TokenService(tmp_path / "tokens", "bob", "t0ken-Pa55-plugh")
    running = _start_registry(tmp_path / "registry-token", token=tokens.registry_config())
    running.username, running.password = tokens.username, tokens.password
    yield running, tokens
    running.stop()
    tokens.close()


# ---- OCI layouts made by hand -----------------------------------------------------------------


def _tar_gz(name: str, payload: bytes) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)


@dataclass
class HandLayout:
    path: Path
    index_bytes: bytes
    manifests: dict[str, bytes] = field(default_factory=dict)  # platform name -> manifest bytes
    descriptors: list[Descriptor] = field(default_factory=list)
    blob_sizes: dict[str, int] = field(default_factory=dict)  # config + layer digests -> size

    @property
    def blob_bytes(self) -> int:
        return sum(self.blob_sizes.values())

    @property
    def index_digest(self) -> str:
        return Descriptor.of("", self.index_bytes).digest


def make_layout(path: Path, platforms: list[str], *, tag: str = "v1", seed: int = 1,
                big_layer: int = 0, shared_layer: bool = True) -> HandLayout:
    """An OCI layout with one image per platform: a shared base layer, a per-platform layer,
    optionally a BIG_LAYER-byte incompressible layer (to force chunked uploads)."""
    rng = random.Random(seed)
    blobs: dict[str, bytes] = {}

    def add(data: bytes) -> Descriptor:
        descriptor = Descriptor.of("", data)
        blobs[descriptor.digest] = data
        return descriptor

    shared = _tar_gz("base.txt", rng.randbytes(2000)) if shared_layer else None
    layout = HandLayout(path, b"")
    for name in platforms:
        layers = []
        if shared:
            layers.append(shared)
        layers.append(_tar_gz(f"{name.replace('/', '-')}.bin", rng.randbytes(3000)))
        if big_layer:
            layers.append(gzip.compress(rng.randbytes(big_layer), compresslevel=1, mtime=0))
        diff_ids = [Descriptor.of("", gzip.decompress(layer)).digest for layer in layers]
        config = canonical_json({**PLATFORMS[name], "config": {}, "created": "1970-01-01T00:00:00Z",
                                 "rootfs": {"type": "layers", "diff_ids": diff_ids}})
        config_desc = add(config)
        layer_descs = [add(layer) for layer in layers]
        manifest = canonical_json({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_desc.digest, "size": config_desc.size},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": d.digest, "size": d.size}
                       for d in layer_descs],
        })
        manifest_desc = add(manifest)
        layout.manifests[name] = manifest
        layout.descriptors.append(Descriptor(OCI_MANIFEST, manifest_desc.digest, manifest_desc.size,
                                             platform=PLATFORMS[name]))
        for d in (config_desc, *layer_descs):
            layout.blob_sizes[d.digest] = d.size
    layout.index_bytes = build_index(layout.descriptors)
    index_desc = add(layout.index_bytes)
    if path.exists():
        shutil.rmtree(path)
    (path / "blobs" / "sha256").mkdir(parents=True)
    (path / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    top = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_INDEX, "digest": index_desc.digest, "size": index_desc.size,
         "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    (path / "index.json").write_bytes(canonical_json(top))
    for digest, data in blobs.items():
        (path / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
    return layout


# ---- a proxy that fails on purpose ------------------------------------------------------------


_HOP_HEADERS = ("content-length", "transfer-encoding", "connection", "content-encoding")


class FlakyProxy:
    """Forwards to a registry on 127.0.0.1, but fails its first FAILURES requests: with STATUS (503 by
    default, with a RETRY_AFTER header when given), or (DROP) by closing the connection without an
    answer; or (NO_MOUNT) hides mount support; or (REWRITE) answers REWRITE(path, body) instead of
    the registry's body: a registry that lies.

    It can also play the parts of an object-store-backed registry: UPLOADS_TO rewrites the Location of
    an upload POST to another origin, BLOBS_TO answers blob GETs with a 307 there, and SIGN (an
    Authorization value) is what such an origin adds itself when forwarding (a pre-signed URL needs
    no credentials from the client). Every request's method, path and headers are in `seen_requests`.
    """

    def __init__(self, upstream: str, failures: int = 0, drop: bool = False, method: str | None = None,
                 after: int = 0, no_mount: bool = False, status: int = 503, retry_after: str | None = None,
                 uploads_to: str | None = None, blobs_to: str | None = None, sign: str | None = None,
                 rewrite: Callable[[str, bytes], bytes] | None = None):
        self.upstream = upstream
        self.failures = failures
        self.drop = drop
        self.method = method  # count (and fail) only requests of this method
        self.after = after  # let this many counted requests through before failing
        self.no_mount = no_mount  # act as a registry without cross-repository mount (strip ?mount=&from=)
        self.rewrite = rewrite
        self.status, self.retry_after = status, retry_after
        self.uploads_to, self.blobs_to, self.sign = uploads_to, blobs_to, sign
        self.seen = 0
        self.seen_requests: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                pass

            def _answer(self, status: int, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in {**headers, "Content-Length": "0"}.items():
                    self.send_header(key, value)
                self.end_headers()

            def _forward(self) -> None:
                with proxy.lock:
                    proxy.seen_requests.append((self.command, self.path, dict(self.headers.items())))
                    counted = proxy.method in (None, self.command)
                    proxy.seen += counted
                    fail = counted and proxy.after < proxy.seen <= proxy.after + proxy.failures
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if fail and proxy.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fail:
                    extra = {"Retry-After": proxy.retry_after} if proxy.retry_after else {}
                    self._answer(proxy.status, extra)
                    return
                path = self.path
                if proxy.blobs_to and self.command == "GET" and "/blobs/sha256:" in path:
                    self._answer(307, {"Location": f"http://{proxy.blobs_to}{path}"})
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "authorization")}
                if self.headers.get("Authorization"):
                    headers["Authorization"] = self.headers["Authorization"]
                if proxy.sign:
                    headers["Authorization"] = proxy.sign
                headers["Host"] = proxy.host
                if proxy.no_mount and "mount=" in path:
                    path = path.split("?", 1)[0]
                reply = requests.request(self.command, f"http://{proxy.upstream}{path}", headers=headers,
                                         data=body, allow_redirects=False, timeout=60)
                self.send_response(reply.status_code)
                for key, value in reply.headers.items():
                    if key.lower() not in _HOP_HEADERS:
                        if (key.lower() == "location" and proxy.uploads_to and self.command == "POST"
                                and "/blobs/uploads/" in path):
                            value = value.replace(proxy.host, proxy.uploads_to)
                        self.send_header(key, value)
                content = reply.content if self.command != "HEAD" else b""
                if proxy.rewrite and content:
                    content = proxy.rewrite(path, content)
                length_out = reply.headers.get("Content-Length", str(len(content)))
                if self.command != "HEAD":
                    length_out = str(len(content))
                self.send_header("Content-Length", length_out)
                self.end_headers()
                if content:
                    self.wfile.write(content)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def published_digests(target: str, credentials: Credentials | None = None,
                      settings: Settings | None = None) -> dict[str, str]:
    """{platform name ("amd64", "arm/v7"): manifest digest} of what TARGET publishes (through
    xarch's own verified pull, xarch.registry.pull.fetch_image)."""
    from xarch.registry.pull import fetch_image

    image = fetch_image(target, credentials, settings, with_configs=False)
    return {manifest.platform_name: manifest.digest for manifest in image.manifests}


# One access-log line of docker-registry: method, path, status.
ACCESS = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (/v2/[^ ]*) HTTP/1\.1" (\d+)')


def requests_since(registry: Registry, mark: int) -> list[tuple[str, str, int]]:
    """(method, path, status) of every request the registry logged after byte MARK of its log."""
    text = registry.log.read_bytes()[mark:].decode(errors="replace")
    return [(m[1], m[2], int(m[3])) for m in ACCESS.finditer(text)]


def mark(registry: Registry) -> int:
    """Where REGISTRY's log ends now: requests_since(registry, mark(registry)) are the ones after."""
    return registry.log.stat().st_size
