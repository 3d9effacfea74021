"""Credentials stay home (issue 10, item 8): a real registry behind a proxy that hands out
upload and blob URLs on a second origin, as registries backed by object stores do.

The second origin records what it receives and adds the registry's credentials itself when
forwarding (it stands for a pre-signed URL), so the push works only if xarch sends nothing there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.registry import FlakyProxy, Registry, make_layout
from xarch.registry.auth import Credentials
from xarch.registry.client import client_settings, origin
from xarch.registry.errors import AuthError
from xarch.registry.pull import pull_layout
from xarch.registry.push import push_layout


def _basic(registry: Registry) -> str:
    return Credentials(registry.username, registry.password).basic_header()


def _authorized(proxy: FlakyProxy) -> list[str]:
    return [f"{method} {path}" for method, path, headers in proxy.seen_requests
            if any(key.lower() == "authorization" for key in headers)]


def test_origin_is_scheme_host_and_port() -> None:
    assert origin("http://127.0.0.1/v2/") == origin("HTTP://127.0.0.1:80/x")
    assert origin("https://r.example/v2/") == ("https", "r.example", 443)
    assert origin("http://127.0.0.1:5000/") != origin("http://127.0.0.1:5001/")
    assert origin("http://localhost:5000/") != origin("http://127.0.0.1:5000/")


@pytest.mark.parametrize("chunked", [False, True])
def test_upload_location_on_another_origin_gets_no_credentials(auth_registry: Registry, tmp_path: Path,
                                                               chunked: bool) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"], big_layer=300_000 if chunked else 0)
    credentials = Credentials(auth_registry.username, auth_registry.password)
    with FlakyProxy(auth_registry.host, sign=_basic(auth_registry)) as store, \
            FlakyProxy(auth_registry.host, uploads_to=store.host) as front:
        settings = client_settings(chunk_size=100_000) if chunked else None
        pushed = push_layout(layout.path, f"{front.host}/private/app:v1", credentials=credentials,
                             settings=settings)
        uploads = [f"{m} {p}" for m, p, _ in store.seen_requests]
        assert any(u.startswith("PUT ") for u in uploads)  # the blobs did go to the second origin
        if chunked:
            assert any(u.startswith("PATCH ") for u in uploads)
        assert _authorized(store) == []
        assert _authorized(front)  # the registry's own origin did get them

        # Blob downloads redirected (307) to the second origin: requests follows, without credentials.
        with FlakyProxy(auth_registry.host, sign=_basic(auth_registry)) as blob_store, \
                FlakyProxy(auth_registry.host, blobs_to=blob_store.host) as reader:
            pulled = pull_layout(f"{reader.host}/private/app:v1", tmp_path / "pulled",
                                 credentials=credentials)
            assert pulled.digest == pushed.digest
            assert [m for m, _, _ in blob_store.seen_requests].count("GET") >= len(layout.blob_sizes)
            assert _authorized(blob_store) == []


def test_another_origin_asking_for_credentials_gets_none(auth_registry: Registry, tmp_path: Path) -> None:
    """An upload URL whose server answers 401: one line naming it, the password never sent there."""
    layout = make_layout(tmp_path / "layout", ["amd64"])
    credentials = Credentials(auth_registry.username, auth_registry.password)
    with FlakyProxy(auth_registry.host) as store, \
            FlakyProxy(auth_registry.host, uploads_to=store.host) as front:
        with pytest.raises(AuthError) as caught:
            push_layout(layout.path, f"{front.host}/private/app:v1", credentials=credentials)
        assert f"127.0.0.1:{store.host.split(':')[1]} asked for credentials" in str(caught.value)
        assert "\n" not in str(caught.value)
        assert store.seen_requests and _authorized(store) == []
