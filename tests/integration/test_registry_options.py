"""The registry options every registry-reading command shares (xarch/cli/options.py: remote_options).

Real registries: one serving HTTPS with a self-signed certificate (reached only with --ca-cert), one
with htpasswd Basic auth (reached with -u/--password-stdin). Typed credentials go only to the
registry of the reference they were typed for.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.registry import Registry, make_layout
from xarch.cli.options import Remote
from xarch.registry.auth import Credentials
from xarch.registry.push import make_client, push_layout
from xarch.registry.reference import parse_reference

REPO = Path(__file__).resolve().parents[2]


def xarch(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "xarch.cli", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=120)


def test_ca_cert_reaches_a_tls_registry_from_diff_referrers_and_inspect(tls_registry: Registry,
                                                                       tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"])
    target = f"{tls_registry.host}/secure/app:v1"
    cert = str(tls_registry.tls_cert)
    pushed = xarch("push", str(layout.path), target, "--ca-cert", cert, "-q")
    assert pushed.returncode == 0, pushed.stderr
    without = xarch("diff", target, str(layout.path))
    assert without.returncode == 4 and "--ca-cert" in without.stderr, without.stderr
    same = xarch("diff", target, str(layout.path), "--ca-cert", cert, "-q")
    assert same.returncode == 0, same.stdout + same.stderr
    listed = xarch("referrers", target, "--ca-cert", cert, "--json")
    assert listed.returncode == 0 and listed.stdout.strip() == "[]", listed.stderr
    signatures = xarch("inspect", target, "--ca-cert", cert)
    assert signatures.returncode == 0, signatures.stderr


def test_typed_credentials_reach_diff_and_referrers(auth_registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64"])
    target = f"{auth_registry.host}/private/app:v1"
    password = f"{auth_registry.password}\n"
    assert xarch("push", str(layout.path), target, "-u", "alice", "--password-stdin", "-q",
                 stdin=password).returncode == 0
    refused = xarch("diff", target, str(layout.path))
    assert refused.returncode == 4, refused.stderr
    same = xarch("diff", target, str(layout.path), "-u", "alice", "--password-stdin", "-q", stdin=password)
    assert same.returncode == 0, same.stdout + same.stderr
    listed = xarch("referrers", target, "-u", "alice", "--password-stdin", stdin=password)
    assert listed.returncode == 0, listed.stderr


def test_typed_credentials_serve_one_registry(auth_registry: Registry, registry: Registry,
                                              tmp_path: Path) -> None:
    two = xarch("diff", f"{auth_registry.host}/a:v1", f"{registry.host}/b:v1", "-u", "alice",
                "--password-stdin", stdin="secret\n")
    assert two.returncode == 2, two.stderr
    assert two.stderr.count("\n") == 1 and "two registries" in two.stderr
    assert "secret" not in two.stderr


def test_credentials_go_only_to_the_host_they_were_typed_for(registry: Registry, tmp_path: Path) -> None:
    alice = Credentials(username="alice", password="s3cret")
    settings = Remote(credentials=alice).settings(f"{registry.host}/private/app:v1")
    assert settings.credentials_host == registry.host
    own = make_client(parse_reference(f"{registry.host}/private/app:v1"), None, settings)
    other = make_client(parse_reference("127.0.0.2:1/other/app:v1"), None, settings)
    assert own.auth.credentials == alice and other.auth.credentials != alice
    # and a push with them still works against a registry that asks for nothing
    layout = make_layout(tmp_path / "layout", ["amd64"])
    assert push_layout(layout.path, f"{registry.host}/open/app:v1", settings=settings).reference
