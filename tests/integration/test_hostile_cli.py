"""Hostile values typed on the command line: one escaped error line, a documented exit code.

Each case is the real CLI in a subprocess (`python -m xarch.cli`); none needs a registry, because
every one of them must be refused before anything is sent.
"""

from __future__ import annotations

import base64
import http.server
import os
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.support.registry import Registry, make_layout

REPO = Path(__file__).resolve().parents[2]


def xarch(*args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "xarch.cli", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=120, cwd=cwd)


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The single stderr line of a failure with exit CODE (no traceback)."""
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(("reference", "words"), [
    ("127.0.0.1:99999/app:1", "port 99999 is not in 1..65535"),
    ("127.0.0.1:0/app:1", "port 0 is not in 1..65535"),
    ("a" * 64 + ".example/app:1", "longer than DNS allows"),
])
def test_a_registry_host_no_client_can_reach_is_a_bad_reference(reference: str, words: str) -> None:
    line = one_line(xarch("referrers", reference), 2)
    assert words in line and "internal error" not in line


def test_control_characters_in_a_value_are_shown_escaped(tmp_path: Path) -> None:
    # A --platform (or any value) quoted back in an error must not reach the terminal raw.
    for args in (["inspect", "no\x1b[2Jsuch\x07"], ["referrers", "127.0.0.1:5000/app:\x1b[31m"],
                 ["build", "--strategy", "\x1b[2J"], ["inspect", "--bogus\x1b[2J", "x"]):
        result = xarch(*args, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "\x1b" not in result.stderr and "\x07" not in result.stderr, result.stderr
        assert "\\x1b" in result.stderr


@pytest.mark.parametrize("content", ["", "not a certificate\n",
                                     "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"])
def test_a_ca_cert_without_a_certificate_is_bad_input_naming_the_file(tmp_path: Path, content: str) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text(content)
    line = one_line(xarch("referrers", "127.0.0.1:1/app:1", "--ca-cert", str(bundle)), 2)
    assert f"--ca-cert {bundle}: holds no PEM certificate" in line


def test_a_ca_cert_that_does_not_sign_the_registry_is_named_not_asked_for(
        tls_registry: Registry, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(tmp_path / "other.key"), "-out", str(other), "-days", "1", "-subj", "/CN=other"],
                   check=True, capture_output=True)
    line = one_line(xarch("referrers", f"{tls_registry.host}/app:1", "--ca-cert", str(other)), 4)
    assert f"--ca-cert {other} does not hold the CA" in line and "pass --ca-cert" not in line


@pytest.mark.parametrize("source", ["BAD", "team/app&from=other", "app:push", "/app"])
def test_a_mount_from_that_is_no_repository_name_is_refused_before_the_push(
        registry: Registry, tmp_path: Path, source: str) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64"])
    pushed = xarch("push", str(layout.path), f"{registry.host}/app:1", "--mount-from", source, "-q")
    line = one_line(pushed, 2)
    assert f"--mount-from {source!r}: not a repository name" in line
    assert not list((registry.workdir / "storage").rglob("_manifests"))  # nothing reached it


def test_build_refuses_a_password_stdin_no_key_reads(tmp_path: Path) -> None:
    # Refused before the recipe is even read: the folder holds none.
    line = one_line(xarch("build", "--password-stdin", "-o", f"oci:{tmp_path / 'out'}", stdin="hunter2\n",
                          cwd=tmp_path), 2)
    assert "--password-stdin is --sign-key's password and needs --sign-key" in line
    assert "hunter2" not in line and not (tmp_path / "out").exists()


@pytest.mark.parametrize("pair", ["k\x1b[2J=v", "a\nb=v", "=v", "novalue"])
def test_assemble_refuses_an_annotation_key_a_recipe_would_refuse(registry: Registry, pair: str) -> None:
    digest = "sha256:" + "ab" * 32
    line = one_line(xarch("assemble", f"{registry.host}/app:1", "--from", f"{registry.host}/app@{digest}",
                          "--annotation", pair), 2)
    assert "--annotation" in line and "expected KEY=VALUE" in line and "\x1b" not in line


def test_inspect_refuses_views_it_would_ignore(tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64"])
    both = one_line(xarch("inspect", str(layout.path), "--platform", "amd64", "--config", "--files"), 2)
    assert "--config and --files are separate views" in both
    # A registry image's files are not read by inspect: refused before any request (port 1 is closed).
    remote = one_line(xarch("inspect", "127.0.0.1:1/app:1", "--files"), 2)
    assert "--files reads a local layout or archive" in remote


class _HostileRegistry(http.server.BaseHTTPRequestHandler):
    """Answers /v2/… with a Bearer challenge whose realm and token body the test chooses."""

    realm = ""
    token_body = b""
    token_requests: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.startswith("/token"):
            type(self).token_requests.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.token_body)))
            self.end_headers()
            self.wfile.write(self.token_body)
            return
        self.send_response(401)
        self.send_header("WWW-Authenticate", f'Bearer realm="{self.realm}",service="x"')
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler], tls: tuple[Path, Path] | None = None) -> tuple[
        http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"token": {"a": 1}}'])
def test_a_token_service_answering_garbage_is_a_registry_error(body: bytes) -> None:
    handler: Any = type("Garbage", (_HostileRegistry,), {"token_body": body, "token_requests": []})
    server, host = _serve(handler)
    handler.realm = f"http://{host}/token"
    try:
        line = one_line(xarch("referrers", f"{host}/app:1"), 4)
    finally:
        server.shutdown()
    assert f"token service of {host} answered without a token" in line


def test_credentials_typed_for_https_never_go_to_a_plain_http_realm(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    handler: Any = type("Downgrade", (_HostileRegistry,),
                        {"token_body": b'{"token": "t"}', "token_requests": []})
    plain, plain_host = _serve(handler)
    handler.realm = f"http://{plain_host}/token"
    secure, host = _serve(handler, (cert, key))
    try:
        line = one_line(xarch("referrers", f"{host}/app:1", "--ca-cert", str(cert), "-u", "bob",
                              "--password-stdin", stdin="hunter2\n"), 4)
    finally:
        plain.shutdown()
        secure.shutdown()
    assert "credentials are not sent to it" in line and "hunter2" not in line
    assert handler.token_requests == []


@pytest.mark.parametrize(("reference", "words"), [
    ("bob:s3cret@127.0.0.1:1/app:1", "credentials do not go in a reference"),
    ("https://bob:s3cret@127.0.0.1:1/app:1", "no https://"),
    ("http://127.0.0.1:1/app:1", "no http://"),
])
def test_a_url_for_a_reference_is_refused_and_its_password_never_printed(tmp_path: Path, reference: str,
                                                                         words: str) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64"])
    line = one_line(xarch("push", str(layout.path), reference, "-q"), 2)
    assert words in line and "s3cret" not in line


def test_push_takes_docker_colon_slash_slash_as_diff_does(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64"])
    pushed = xarch("push", str(layout.path), f"docker://{registry.host}/app:1", "-q")
    assert pushed.returncode == 0, pushed.stderr


RECIPE_WITH_SNAPSHOT = """\
name: snap
platforms: [amd64]
epoch: 1700000000
sources:
  debian:
    suites: [bookworm]
    snapshot: {snapshot}
packages: [base-files]
"""


@pytest.mark.parametrize("stamp", ["20251399T000000Z", "20250230T000000Z", "20250101T250000Z"])
def test_a_snapshot_that_is_no_real_instant_is_refused_before_a_download(tmp_path: Path, stamp: str) -> None:
    (tmp_path / "xarch.yaml").write_text(RECIPE_WITH_SNAPSHOT.format(snapshot=stamp))
    line = one_line(xarch("lock", "-f", str(tmp_path)), 2)
    assert f"sources.debian[0].snapshot: '{stamp}' is not a snapshot timestamp" in line
    assert not (tmp_path / "xarch.lock").exists()
    line = one_line(xarch("outdated", "-f", str(REPO / "examples" / "nginx"), "--snapshot", stamp), 2)
    assert f"--snapshot '{stamp}': not `latest` nor a timestamp" in line


@pytest.mark.parametrize("extra", [["--update"], ["--snapshot", "latest"], ["--update", "nginx-light"]])
def test_lock_check_refuses_the_options_that_move_pins(tmp_path: Path, extra: list[str]) -> None:
    (tmp_path / "xarch.yaml").write_text(RECIPE_WITH_SNAPSHOT.format(snapshot="20250520T000000Z"))
    line = one_line(xarch("lock", "-f", str(tmp_path), "--check", *extra), 2)
    assert "--check writes nothing and takes no" in line
    assert sorted(path.name for path in tmp_path.iterdir()) == ["xarch.yaml"]


def test_a_name_longer_than_docker_takes_is_refused_before_the_build(tmp_path: Path) -> None:
    name = "a" * 256
    line = one_line(xarch("build", "-f", str(REPO / "examples" / "hello-c"), "-t", f"{name}:1",
                          "-o", f"oci:{tmp_path / 'out'}"), 2)
    assert "the name is 256 characters, more than the 255" in line and not (tmp_path / "out").exists()
    line = one_line(xarch("push", str(tmp_path), f"127.0.0.1:1/{'b' * 250}:1", "-q"), 2)
    assert "the name is 262 characters" in line


def test_referrers_says_when_nothing_is_attached(tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64"])
    listed = xarch("referrers", str(layout.path))
    assert listed.returncode == 0 and listed.stdout == ""
    assert "nothing attached" in listed.stderr


@pytest.mark.parametrize(("config", "code", "words"), [
    ('{"auths": {"127.0.0.1:1": {"auth": "!!!notbase64"}}}', 2, "is not base64 of USER:PASSWORD"),
    ('{"auths": {"127.0.0.1:1": {"auth": "bm9jb2xvbg=="}}}', 2, "is not base64 of USER:PASSWORD"),
    ('{"credsStore": "xarch-test-absent"}', 4, "docker-credential-xarch-test-absent not installed"),
])
def test_a_broken_docker_config_is_one_line_naming_the_registry(tmp_path: Path, config: str, code: int,
                                                                  words: str) -> None:
    (tmp_path / "config.json").write_text(config)
    env = {**os.environ, "PYTHONPATH": str(REPO), "DOCKER_CONFIG": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "xarch.cli", "referrers", "127.0.0.1:1/app:1"],
                            capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    line = one_line(result, code)
    assert words in line and "127.0.0.1:1" in line


@pytest.mark.parametrize("kind", ["not-json", "fifo", "folder"])
def test_a_docker_config_the_sdk_would_ignore_is_one_line_naming_it(tmp_path: Path, kind: str) -> None:
    """The docker SDK reads these as "no config": the command would run without the user's login."""
    config = tmp_path / "config.json"
    if kind == "not-json":
        config.write_text('{"auths": ')
    elif kind == "fifo":
        os.mkfifo(config)
    else:
        config.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "DOCKER_CONFIG": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "xarch.cli", "referrers", "127.0.0.1:1/app:1"],
                            capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    line = one_line(result, 2)
    assert f"Docker config {config}" in line


def test_a_password_beyond_latin_1_reaches_the_token_service_as_utf_8() -> None:
    handler: Any = type("Utf8", (_HostileRegistry,), {"token_body": b'{"token": "t"}', "token_requests": []})
    server, host = _serve(handler)
    handler.realm = f"http://{host}/token"
    try:
        line = one_line(xarch("referrers", f"{host}/app:1", "-u", "bob", "--password-stdin",
                              stdin="pässwörd€\n"), 4)
    finally:
        server.shutdown()
    assert "rejected" in line and "pässwörd€" not in line  # the fake registry takes no token
    assert handler.token_requests[0] == "Basic " + base64.b64encode("bob:pässwörd€".encode()).decode()


@pytest.mark.parametrize(("stdin", "words"), [(b"\xff\xfe\n", "is not UTF-8"),
                                              (b"x" * (65 * 1024), "longer than 65536 bytes")])
def test_a_registry_password_on_stdin_is_bounded_and_utf_8(stdin: bytes, words: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "xarch.cli", "referrers", "127.0.0.1:1/app:1", "-u", "bob",
                             "--password-stdin"], input=stdin, capture_output=True, env=env, timeout=120)
    line = one_line(subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(),
                                                result.stderr.decode()), 2)
    assert "--password-stdin: " in line and words in line


@pytest.mark.parametrize(("first", "second"), [("oci-archive:x.tar", "docker-archive:x.tar"),
                                               ("oci:out", "oci-archive:out/x.tar")])
def test_two_outputs_at_one_path_are_refused_before_the_build(tmp_path: Path, first: str,
                                                              second: str) -> None:
    kind_a, _, name_a = first.partition(":")
    kind_b, _, name_b = second.partition(":")
    line = one_line(xarch("build", "-f", str(REPO / "examples" / "hello-c"), "-q",
                          "-o", f"{kind_a}:{tmp_path / name_a}", "-o", f"{kind_b}:{tmp_path / name_b}"), 2)
    assert "the same path, or one inside the other" in line
    assert list(tmp_path.iterdir()) == []


def test_paths_in_progress_and_result_lines_are_shown_escaped(tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "lay\x1b[31mout\nx", ["amd64"])
    compared = xarch("diff", str(layout.path), str(layout.path))
    assert compared.returncode == 0, compared.stderr
    pushed = xarch("push", str(layout.path), "127.0.0.1:1/app:1", "--mount-from", "BAD")
    assert pushed.returncode == 2
    for text in (compared.stdout, compared.stderr, pushed.stderr):
        assert "\x1b" not in text and "out\nx" not in text, text
    assert "lay\\x1b[31mout\\nx" in compared.stdout and "lay\\x1b[31mout\\nx" in pushed.stderr


class _EndlessManifest(http.server.BaseHTTPRequestHandler):
    """A registry whose manifest answer claims a terabyte and never ends."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/v2/":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.oci.image.index.v1+json")
        self.send_header("Content-Length", str(10**12))
        self.end_headers()
        try:
            while True:
                self.wfile.write(b" " * 65536)
        except OSError:
            return

    def log_message(self, *args: object) -> None:
        pass


def test_an_endless_manifest_is_a_registry_error_not_a_memory_error() -> None:
    server, host = _serve(_EndlessManifest)
    try:
        # 1 GiB of address space: an unbounded read ends as MemoryError (exit 70) long before the answer does.
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        result = subprocess.run(["sh", "-c", 'ulimit -v 1048576 && exec "$0" -m xarch.cli inspect "$1"',
                                 sys.executable, f"{host}/app:1"], capture_output=True, text=True, env=env,
                                timeout=120)
    finally:
        server.shutdown()
    line = one_line(result, 4)
    assert "larger than 4194304 bytes" in line


class _OddErrorBody(http.server.BaseHTTPRequestHandler):
    """A registry that refuses with a JSON error body of the wrong shape."""

    body = b""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        status, body = (200, b"") if self.path == "/v2/" else (403, self.body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("body", [b"[1]", b'"denied"', b'{"errors": 3}',
                                  b'{"errors": [{"code": "\\u001b[2J"}]}'])
def test_an_error_body_of_the_wrong_shape_is_still_one_registry_line(body: bytes) -> None:
    server, host = _serve(type("Odd", (_OddErrorBody,), {"body": body}))
    try:
        line = one_line(xarch("inspect", f"{host}/app:1"), 4)
    finally:
        server.shutdown()
    assert "access denied" in line and "\x1b" not in line
