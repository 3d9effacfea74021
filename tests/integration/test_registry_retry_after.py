"""A registry's 429/503 with Retry-After (issue 11, kind 4): waited for as asked, said on stderr,
bounded; past the bound one line and exit 4. A real registry behind a proxy that answers 429."""

from __future__ import annotations

import email.utils
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.registry import FlakyProxy, Registry, make_layout, published_digests
from xarch.registry.client import client_settings, retry_after_seconds
from xarch.registry.errors import RegistryUnavailable
from xarch.registry.push import push_layout

REPO = Path(__file__).resolve().parents[2]
PUSH = ("import sys; from xarch.cli import run; from xarch.cli.push import push_command; "
        "run(push_command, sys.argv[1:], 'xarch push')")


def test_retry_after_values() -> None:
    now = time.time()
    assert retry_after_seconds("25") == 25.0
    assert retry_after_seconds(" 0 ") == 0.0
    later = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= (retry_after_seconds(later, now) or 0) <= 31
    assert retry_after_seconds(email.utils.formatdate(now - 30, usegmt=True), now) == 0.0
    for unreadable in (None, "", "-5", "soon", "1.5", "Mon, 99 Foo 2026"):
        assert retry_after_seconds(unreadable) is None


def test_the_first_request_answered_429_is_waited_for(registry: Registry, tmp_path: Path,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    """The registry's first answer (the /v2/ probe) is 429 Retry-After: 2: waited, not "cannot connect"."""
    layout = make_layout(tmp_path / "layout", ["amd64"])
    with FlakyProxy(registry.host, failures=1, status=429, retry_after="2") as proxy:
        started = time.monotonic()
        pushed = push_layout(layout.path, f"{proxy.host}/demo/app:v1")
        elapsed = time.monotonic() - started
    assert 2 <= elapsed < 10
    assert published_digests(f"{registry.host}/demo/app:v1") == pushed.manifests
    err = capfd.readouterr().err
    assert f"{proxy.host} answered HTTP 429 Too Many Requests" in err and "waiting 2 s" in err


@pytest.mark.parametrize("method", ["PUT", "GET"])
def test_503_with_an_http_date_is_waited_for(registry: Registry, tmp_path: Path, method: str,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"])
    push_layout(layout.path, f"{registry.host}/demo/app:v1")
    date = email.utils.formatdate(time.time() + 3, usegmt=True)  # whole seconds: waits 2-3 s
    with FlakyProxy(registry.host, failures=1, status=503, retry_after=date, method=method) as proxy:
        started = time.monotonic()
        if method == "PUT":
            # A new tag for the pushed index: its PUT is the one write an unchanged re-push makes.
            push_layout(layout.path, f"{proxy.host}/demo/app:v2")
        else:
            published_digests(f"{proxy.host}/demo/app:v1")
        assert 1.5 <= time.monotonic() - started < 10
    assert "answered HTTP 503 Service Unavailable" in capfd.readouterr().err


def test_a_wait_past_the_bound_is_a_network_error(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64"])
    with FlakyProxy(registry.host, failures=100, status=429, retry_after="25", method="PUT") as proxy:
        with pytest.raises(RegistryUnavailable) as caught:
            push_layout(layout.path, f"{proxy.host}/demo/app:v1", settings=client_settings(max_wait=5))
        message = str(caught.value)
        assert proxy.host in message and "HTTP 429" in message and "Retry-After" in message
        assert caught.value.exit_code == 4

        # The same through the CLI: the bound from the environment, one line, exit 4, no 25 s wait.
        env = {**os.environ, "PYTHONPATH": str(REPO), "XARCH_REGISTRY_MAX_WAIT": "3",
               "DOCKER_CONFIG": str(tmp_path)}
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-c", PUSH, str(layout.path), f"{proxy.host}/demo/app:v1",
                                 "-q"], capture_output=True, text=True, env=env, timeout=120, check=False)
        assert time.monotonic() - started < 20
    assert result.returncode == 4, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("xarch: error: ") and proxy.host in last and "HTTP 429" in last
    assert "Traceback" not in result.stderr


def test_retry_after_zero_forever_still_ends(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64"])
    with FlakyProxy(registry.host, failures=10_000, status=503, retry_after="0", method="PUT") as proxy:
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable):
            push_layout(layout.path, f"{proxy.host}/demo/app:v1", settings=client_settings(max_wait=2))
        assert time.monotonic() - started < 15
