"""The python: section of xarch.lock (xarch/sources/python/lock.py): written beside the Debian part
without touching it, read back equal, drift named per input, pin changes listed per platform."""

from __future__ import annotations

from pathlib import Path

import pytest

from xarch import platforms
from xarch.sources.python.lock import (
    PythonLock,
    PythonLockError,
    compare_pins,
    drift,
    dump_section,
    load_section,
    requirements_digest,
)
from xarch.sources.python.resolve import LockedWheel, target_for

TARGET = target_for(platforms.all_platforms()["arm64"], "3.11", "2.36")


def wheel(name: str, version: str) -> LockedWheel:
    filename = f"{name}-{version}-py3-none-any.whl"
    return LockedWheel(name, version, filename, f"https://files.example/{filename}", "a" * 64, 10)


def lock(*wheels: LockedWheel, requirements: list[str] | None = None) -> PythonLock:
    return PythonLock("https://pypi.org/simple", requirements_digest(requirements or ["flask"]), "uv 0.1",
                      {"arm64": TARGET}, {"arm64": list(wheels)})


def test_the_section_round_trips_and_keeps_the_rest_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "xarch.lock"
    path.write_text("debian:\n  kept: true\n")
    written = lock(wheel("flask", "3.0.0"), wheel("click", "8.1.7"))
    dump_section(path, written)
    assert "kept: true" in path.read_text()
    loaded = load_section(path)
    assert loaded is not None and loaded.to_data() == written.to_data()
    assert [w.name for w in loaded.for_platform("arm64")] == ["click", "flask"]
    with pytest.raises(PythonLockError, match="no python wheels for amd64; run `xarch lock`"):
        loaded.for_platform("amd64")
    assert load_section(tmp_path / "none.lock") is None


def test_drift_names_each_input_that_changed() -> None:
    old = lock(wheel("flask", "3.0.0"))
    assert drift(old, ["flask"], "https://pypi.org/simple", {"arm64": TARGET}) == []
    newer = target_for(platforms.all_platforms()["arm64"], "3.12", "2.36")
    changed = {"arm64": newer, "amd64": TARGET}
    assert drift(old, ["flask", "rich"], "https://mirror.example/simple", changed) == [
        "python requirements changed",
        "python.index_url changed (https://pypi.org/simple → https://mirror.example/simple)",
        "python target of arm64 changed (CPython 3.11, glibc 2.36 → CPython 3.12, glibc 2.36)",
        "no python wheels for amd64",
    ]


def test_pin_changes_are_listed_per_platform() -> None:
    lines = compare_pins(lock(wheel("flask", "3.0.0"), wheel("itsdangerous", "2.1")),
                         lock(wheel("flask", "3.0.1"), wheel("blinker", "1.7")))
    assert "arm64: blinker added (1.7, blinker-1.7-py3-none-any.whl)" in lines
    assert "arm64: itsdangerous removed (was 2.1)" in lines
    assert any(line.startswith("arm64: flask ") and "3.0.1" in line for line in lines)


def test_a_damaged_lock_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "xarch.lock"
    path.write_text("- a list, not a mapping\n")
    with pytest.raises(PythonLockError, match="malformed lock"):
        load_section(path)
