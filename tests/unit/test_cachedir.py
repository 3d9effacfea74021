"""Where the cache lives (xarch.cachedir): XARCH_CACHE, then XDG_CACHE_HOME, then ~/.cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from xarch.cachedir import default_root
from xarch.oci.store import Store


def test_the_order_of_the_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XARCH_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_root() == tmp_path / "home" / ".cache" / "xarch"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "xarch"
    monkeypatch.setenv("XARCH_CACHE", str(tmp_path / "mine"))
    assert default_root() == tmp_path / "mine"
    assert Store().root == tmp_path / "mine"  # the store and the records find one cache
    monkeypatch.setenv("XARCH_CACHE", "")  # empty is unset, as for the shell's ${VAR:-…}
    assert default_root() == tmp_path / "xdg" / "xarch"
