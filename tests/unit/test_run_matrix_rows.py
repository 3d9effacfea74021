"""The strategy matrix `xarch platforms` prints (xarch/run/matrix.py): every platform file has a
row, the host's own platform is native only, and a foreign one never runs natively."""

from __future__ import annotations

from xarch import platforms
from xarch.run.chroot import isolation_problem
from xarch.run.matrix import check_platform, host_matrix


def test_every_platform_has_one_row_in_name_order() -> None:
    rows = host_matrix()
    assert [row.platform for row in rows] == sorted(platforms.all_platforms())
    for row in rows:
        assert [check.strategy for check in row.checks] == ["native", "cross", "emulate"]
        assert row.to_json()["oci"] == platforms.all_platforms()[row.platform].oci


def test_the_hosts_own_platform_needs_no_cross_or_emulation() -> None:
    host = platforms.host()
    native, cross, emulate = check_platform(host, host).checks
    assert native.works is (isolation_problem() is None)
    assert (cross.works, cross.why) == (None, "not needed: host is this platform")
    assert (emulate.works, emulate.why) == (None, "not needed: host is this platform")


def test_a_foreign_platform_never_runs_natively_and_says_why_not() -> None:
    host = platforms.host()
    for name, platform in platforms.all_platforms().items():
        if name == host.name:
            continue
        native, cross, emulate = check_platform(platform, host).checks
        assert (native.works, native.why) == (False, f"host is {host.name}")
        for check in (cross, emulate):
            assert check.works in (True, False)
            assert check.works or check.why, f"{name} {check.strategy}: not working, and no reason"
