"""No session of xarch sends a netrc login (xarch.websession); the registry's is tested against a
real htpasswd registry in tests/integration/test_registry_auth.py."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import requests

from xarch.registry.client import RegistryClient
from xarch.sources.debian import http
from xarch.websession import without_netrc


@pytest.mark.parametrize("entry", ["machine deb.example", "default"])
def test_the_mirror_session_sends_no_netrc_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 entry: str) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text(f"{entry} login alice password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    result: list[requests.PreparedRequest] = []
    # a thread of its own: http.session() is one per thread
    worker = threading.Thread(target=lambda: result.append(
        http.session().prepare_request(requests.Request("GET", "http://deb.example/dists/x"))))
    worker.start()
    worker.join()
    assert "Authorization" not in result[0].headers
    # the check can fail: a plain session does send it
    plain = requests.Session().prepare_request(requests.Request("GET", "http://deb.example/dists/x"))
    assert plain.headers["Authorization"].startswith("Basic ")


def test_a_request_s_own_auth_still_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    client = RegistryClient("registry.example")
    prepared = client.session.prepare_request(
        requests.Request("GET", "https://auth.example/token", auth=("bob", "pw")))
    assert prepared.headers["Authorization"].startswith("Basic ")


def test_without_netrc_keeps_the_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("default login alice password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    session = requests.Session()
    assert without_netrc(session) is session
    prepared = session.prepare_request(requests.Request("GET", "http://any.example/"))
    assert "Authorization" not in prepared.headers
