"""The strategy a stage used, as the image history records it, and how a rebuild uses it."""

from __future__ import annotations

import pytest

from xarch import platforms
from xarch.run.steps import StrategyUnavailable
from xarch.stages import parse_strategy_records, rebuild_strategy, strategy_record

AMD64, ARM64 = platforms.get("amd64"), platforms.get("arm64")


def test_records_round_trip_through_the_history() -> None:
    history = [{"created_by": strategy_record("build", "cross", "amd64"), "empty_layer": True},
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
