"""Registry auth with real servers: htpasswd Basic, the Bearer token flow, Docker config and helpers.

A wrong password must give one clear line and the secret must appear in no output or log.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.registry import (
    Registry,
    TokenService,
    make_layout,
    published_digests,
)
from xarch.registry.auth import Credentials, docker_config_credentials
from xarch.registry.errors import AuthError
from xarch.registry.push import push_layout

REPO = Path(__file__).resolve().parents[2]
# The click command run the way the CLI runs it: XarchError -> one line on stderr, its exit code.
CLI = ("import sys; from xarch.cli import run; from xarch.cli.push import push_command; "
       "run(push_command, sys.argv[1:], 'xarch push')")


def run_push_cli(args: list[str], stdin: str,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ if env is None else env)
    full_env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-c", CLI, *args], input=stdin, capture_output=True, text=True,
                          env=full_env, timeout=120)


def secret_forms(secret: str, username: str) -> list[str]:
    """The password as typed and as it would travel in a Basic header."""
    return [secret, base64.b64encode(f"{username}:{secret}".encode()).decode()]


def test_htpasswd_push_with_password_stdin(auth_registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"])
    target = f"{auth_registry.host}/private/app:v1"
    result = run_push_cli([str(layout.path), target, "--username", "alice", "--password-stdin", "--json"],
                          stdin=f"{auth_registry.password}\n",
                          env={**os.environ, "DOCKER_CONFIG": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["bytes_sent"] == layout.blob_bytes
    for text in (result.stdout, result.stderr, auth_registry.log.read_text()):
        for form in secret_forms(str(auth_registry.password), "alice"):
            assert form not in text


def test_wrong_password_is_one_clear_line_and_never_shown(auth_registry: Registry, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64"])
    wrong = "Wr0ng-But-Secret-Value-42"
    target = f"{auth_registry.host}/private/app:v1"
    result = run_push_cli([str(layout.path), target, "--username", "alice", "--password-stdin"],
                          stdin=wrong + "\n", env={**os.environ, "DOCKER_CONFIG": str(tmp_path)})
    assert result.returncode == 4
    # The first line says which kind of image was pushed; the error is one line after it.
    lines = [line for line in result.stderr.splitlines() if not line.startswith("pushing ")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("xarch: error: ") and "rejected the credentials of user 'alice'" in lines[0]
    assert auth_registry.host in lines[0]

    # In-process too, with every logger at DEBUG (urllib3 logs each request there).
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthError) as caught:
        push_layout(layout.path, target, credentials=Credentials("alice", wrong))
    assert "Credentials(username='alice')" == repr(Credentials("alice", wrong))
    for text in (result.stdout, result.stderr, str(caught.value), caplog.text, auth_registry.log.read_text()):
        for form in secret_forms(wrong, "alice"):
            assert form not in text
    assert '"PUT /v2/' not in auth_registry.log.read_text()  # nothing got written


def test_anonymous_push_to_protected_registry_says_how_to_log_in(auth_registry: Registry,
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # an empty Docker config
    layout = make_layout(tmp_path / "layout", ["amd64"])
    with pytest.raises(AuthError, match="requires a login: run `docker login"):
        push_layout(layout.path, f"{auth_registry.host}/private/app:v1")


@pytest.mark.parametrize("entry", ["machine 127.0.0.1", "default"])
def test_a_netrc_file_sends_no_credentials(auth_registry: Registry, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, entry: str) -> None:
    # requests sends ~/.netrc's login to any host it names, or to every host for `default`, unless
    # told otherwise: over plain HTTP, to a registry nobody gave those credentials to. Registry
    # credentials come from the command line or the Docker config only, as for docker and crane.
    netrc = tmp_path / ".netrc"
    netrc.write_text(f"{entry} login alice password {auth_registry.password}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # an empty Docker config
    layout = make_layout(tmp_path / "layout", ["amd64"])
    with pytest.raises(AuthError, match="requires a login"):
        push_layout(layout.path, f"{auth_registry.host}/private/app:v1")
    assert '"PUT /v2/' not in auth_registry.log.read_text()


def test_docker_config_auths_entry(auth_registry: Registry, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    token = base64.b64encode(f"alice:{auth_registry.password}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": token}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert docker_config_credentials(auth_registry.host).username == "alice"
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"])
    result = push_layout(layout.path, f"{auth_registry.host}/private/app:v1")
    assert result.stats.bytes_sent == layout.blob_bytes
    assert published_digests(f"{auth_registry.host}/private/app:v1") == result.manifests


def test_docker_credential_helper(auth_registry: Registry, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # A real helper program on PATH, run by the docker SDK's credentials module (no daemon involved).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-xtest"
    answer = json.dumps({"ServerURL": auth_registry.host, "Username": "alice",
                         "Secret": auth_registry.password})
    helper.write_text(f"#!/bin/sh\nread server\n[ \"$1\" = get ] && echo '{answer}'\n")
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {auth_registry.host: "xtest"}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    layout = make_layout(tmp_path / "layout", ["amd64"])
    result = push_layout(layout.path, f"{auth_registry.host}/private/helper:v1")
    assert result.stats.blobs_sent == 3


def test_bearer_token_flow(token_registry: tuple[Registry, TokenService], tmp_path: Path) -> None:
    registry_, tokens = token_registry
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"])
    credentials = Credentials(registry_.username, registry_.password)
    pushed = push_layout(layout.path, f"{registry_.host}/team/base:v1", credentials=credentials)
    assert pushed.stats.bytes_sent == layout.blob_bytes
    assert any("repository:team/base:pull,push" in q.get("scope", []) for q in tokens.requests)
    assert all(q.get("service") == [TokenService.service] for q in tokens.requests)

    # A cross-repository mount needs pull on the source too: one token covers both scopes.
    mounted = push_layout(layout.path, f"{registry_.host}/team/app:v1", credentials=credentials,
                          mount_from=["team/base"])
    assert mounted.stats.blobs_mounted == 5 and mounted.stats.bytes_sent == 0
    assert any({"repository:team/app:pull,push", "repository:team/base:pull"} <= set(q.get("scope", []))
               for q in tokens.requests)

    with pytest.raises(AuthError, match="rejected the credentials of user 'bob'"):
        push_layout(layout.path, f"{registry_.host}/team/app:v2",
                    credentials=Credentials(registry_.username, "not-the-password"))


def test_docker_hub_entry_under_its_legacy_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `docker login` stores Docker Hub under https://index.docker.io/v1/; references say docker.io.
    token = base64.b64encode(b"hubuser:hubsecret").decode()
    config = {"auths": {"https://index.docker.io/v1/": {"auth": token}}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    found = docker_config_credentials("docker.io")
    assert (found.username, found.password) == ("hubuser", "hubsecret")
    assert docker_config_credentials("ghcr.io").present is False


def test_mount_source_without_pull_access_falls_back_to_upload(token_registry: tuple[Registry, TokenService],
                                                               tmp_path: Path) -> None:
    registry_, tokens = token_registry
    layout = make_layout(tmp_path / "layout", ["amd64"])
    credentials = Credentials(registry_.username, registry_.password)
    push_layout(layout.path, f"{registry_.host}/other-team/base:v1", credentials=credentials)
    tokens.denied.add("other-team/base")  # bob may no longer read it

    result = push_layout(layout.path, f"{registry_.host}/team/app:v1", credentials=credentials,
                         mount_from=["other-team/base"])
    assert (result.stats.blobs_mounted, result.stats.blobs_sent) == (0, 3)
    assert result.stats.bytes_sent == layout.blob_bytes
