"""The strategy a stage used, as the image history records it, and how a rebuild uses it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.e2e import EPOCH, xarch_ok
from tests.support.needs import need_tool
from tests.support.registry import Registry
from xarch import platforms
from xarch.build.stages import parse_strategy_records, rebuild_strategy, strategy_record
from xarch.registry.imageref import parse_image_ref
from xarch.registry.push import push_layout
from xarch.run.steps import StrategyUnavailable
from xarch.verify.against import published_strategies

AMD64, ARM64 = platforms.get("amd64"), platforms.get("arm64")


def test_records_round_trip_through_the_history() -> None:
    history: list[dict[str, object]] = [
        {"created_by": strategy_record("build", "cross", "amd64"), "empty_layer": True},
        {"created_by": strategy_record("check", "emulate", None), "empty_layer": True},
        {"created_by": "xarch layer main", "comment": "gzip"}]
    assert parse_strategy_records(history) == {"build": "cross on amd64", "check": "emulate"}
    assert history[0]["created_by"] == "xarch stage build: cross on amd64"


@pytest.mark.parametrize(("recorded", "platform", "host", "expected"), [
    ("cross on amd64", ARM64, AMD64, "cross"),
    ("native", ARM64, AMD64, "emulate"),  # built on an arm64 runner: the same bytes under QEMU
    ("emulate", ARM64, ARM64, "native"),  # and the other way round
    ("emulate", ARM64, AMD64, "emulate"),
    ("native", AMD64, AMD64, "native"),
])
def test_the_rebuild_takes_the_recorded_strategy_or_its_equal(
        recorded: str, platform: platforms.Platform, host: platforms.Platform, expected: str) -> None:
    assert rebuild_strategy(recorded, None, platform, host, "stage 'build' (arm64)") == expected
    assert rebuild_strategy(recorded, "auto", platform, host, "stage 'build' (arm64)") == expected


@pytest.mark.parametrize(("recorded", "override", "host", "message"), [
    ("cross on amd64", "emulate", AMD64,
     "stage 'build' (arm64): the image was built with strategy cross on amd64, --strategy asks for emulate"),
    ("emulate", "cross", AMD64,
     "stage 'build' (arm64): the image was built with strategy emulate, --strategy asks for cross"),
    ("cross on amd64", None, ARM64,
     "stage 'build' (arm64): the image was built with strategy cross on amd64, this host is arm64: "
     "rebuild it on an amd64 host"),
])
def test_a_mismatch_names_the_stage_and_both_strategies(recorded: str, override: str | None,
                                                        host: platforms.Platform, message: str) -> None:
    with pytest.raises(StrategyUnavailable) as caught:
        rebuild_strategy(recorded, override, ARM64, host, "stage 'build' (arm64)")
    assert str(caught.value) == message


def test_published_strategies_are_read_from_a_layout_an_archive_and_a_registry(
        registry: Registry, tmp_path: Path) -> None:
    """A stage built natively here (its root: the host's static busybox as /bin/sh)."""
    busybox = need_tool("busybox")
    host = platforms.host()
    folder = tmp_path / "recipe"
    folder.mkdir()
    shutil.copy(busybox, folder / "busybox")
    (folder / "xarch.yaml").write_text(f"""\
name: recorded
platforms: [{host.name}]
epoch: {EPOCH}
stages:
  build:
    files:
      - {{src: busybox, dst: /bin/sh, mode: "0755"}}
    steps:
      - run: mkdir -p /out && echo made > /out/file
copy:
  - {{from: "build:/out/file", dst: /file}}
""")
    layout, archive = tmp_path / "layout", tmp_path / "image.tar"
    for output in (f"oci:{layout}", f"oci-archive:{archive}"):
        xarch_ok("build", "-q", "-f", str(folder / "xarch.yaml"), "-o", output, cache=tmp_path / "cache")
    push_layout(layout, f"{registry.host}/demo/recorded:v1")
    expected = {host.name: {"build": "native"}}
    for text in (str(layout), f"oci-archive:{archive}", f"{registry.host}/demo/recorded:v1"):
        assert published_strategies(parse_image_ref(text)) == expected, text
