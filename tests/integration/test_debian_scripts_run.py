"""`maintainer_scripts: run`: the packages' own preinst/postinst run in the step sandbox
(natively for amd64, under QEMU for arm64), and the image is still reproducible.

libpam-modules' postinst touches /etc/environment and /etc/security/opasswd and dash's
adds its /bin/sh diversion: xarch does not reproduce those, so they are in the image
only when the scripts ran. libc-bin's postinst runs the real ldconfig, whose cache
must equal the one xarch writes without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.e2e import EPOCH, error_lines, image_files, manifests, xarch, xarch_ok
from tests.support.needs import need_binfmt, need_tool

PACKAGES = "[dash, coreutils, sed, grep, perl-base, dpkg, mawk, debianutils, libc-bin, libpam-modules]"


def _recipe(folder: Path, packages: str, scripts: str | None = "run") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    switch = f"\n  maintainer_scripts: {scripts}" if scripts else ""
    (folder / "xarch.yaml").write_text(f"""\
name: scripts
platforms: [amd64, arm64]
epoch: {EPOCH}
sources:
  debian:
    suites: [bookworm]
packages:
  install: {packages}{switch}
""")
    return folder / "xarch.yaml"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, str]:
    """(recipe, image with scripts run, the same packages without, build stderr)."""
    need_tool("gpgv")
    need_tool("bwrap")
    need_binfmt("aarch64")
    base = tmp_path_factory.mktemp("scripts-run")
    recipe = _recipe(base / "run", PACKAGES)
    result = xarch_ok("build", "-v", "-f", str(recipe), "-o", f"oci:{base / 'out'}", cache=base / "cache")
    plain = _recipe(base / "plain", PACKAGES, scripts=None)
    (base / "plain" / "xarch.lock").write_bytes((base / "run" / "xarch.lock").read_bytes())
    xarch_ok("build", "-f", str(plain), "-o", f"oci:{base / 'plain-out'}", cache=base / "cache")
    return recipe, base / "out", base / "plain-out", result.stderr


@pytest.mark.slow
@pytest.mark.qemu
@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_the_scripts_effects_are_in_the_image(built: tuple[Path, Path, Path, str], arch: str) -> None:
    _, out, plain, stderr = built
    ran, reproduced = image_files(out, arch), image_files(plain, arch)
    assert f"[{arch}] image: ran 15 maintainer scripts" in stderr
    only_ran = sorted(set(ran) - set(reproduced))
    assert only_ran == ["etc/environment", "etc/security/opasswd", "var/lib/dpkg/diversions", "var/log"]
    assert b"\n/bin/sh\n/bin/sh.distrib\ndash\n" in ran["var/lib/dpkg/diversions"].data  # dpkg-divert's
    # The real ldconfig wrote the cache xarch had written: nothing changed it.
    assert ran["etc/ld.so.cache"] == reproduced["etc/ld.so.cache"]
    # Everything else is as the reproduced image has it (owners, modes, setgid unix_chkpwd).
    changed = [p for p in set(ran) & set(reproduced) if ran[p] != reproduced[p]]
    assert changed == []
    assert not any(p.startswith(("dev", "proc", "tmp", "var/log/", "var/cache/debconf/")) for p in ran)


@pytest.mark.slow
@pytest.mark.qemu
def test_verify_passes_with_the_scripts_run(built: tuple[Path, Path, Path, str], tmp_path: Path) -> None:
    recipe, out, _, _ = built
    result = xarch_ok("verify", "-f", str(recipe), "--platform", "arm64", "--variations", "user",
                      cache=tmp_path / "cache")
    assert "all digests identical under every variation" in result.stdout
    # The rebuilds also equal the build made earlier, in another cache.
    assert f"reference linux/arm64: {manifests(out)['arm64']}" in result.stdout


@pytest.mark.slow
def test_a_failing_script_is_one_line_naming_package_and_script(tmp_path: Path) -> None:
    need_tool("gpgv")
    need_tool("bwrap")
    recipe = _recipe(tmp_path / "project", "[dash, coreutils, libc6]")  # libc6's preinst needs sed
    result = xarch("build", "-f", str(recipe), "--platform", "amd64", "-o", f"oci:{tmp_path / 'out'}",
                   cache=tmp_path / "cache")
    assert result.returncode == 2
    lines = error_lines(result)
    assert lines[0] == "xarch: error: maintainer scripts (amd64): libc6 preinst failed with exit code 127"
    assert any("sed: not found" in line for line in lines[1:])
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_stage_runs_its_packages_scripts_before_its_steps(tmp_path: Path) -> None:
    need_tool("gpgv")
    need_tool("bwrap")
    project = tmp_path / "project"
    project.mkdir()
    (project / "xarch.yaml").write_text(f"""\
name: stagescripts
platforms: [amd64]
epoch: {EPOCH}
sources:
  debian:
    suites: [bookworm]
stages:
  build:
    packages:
      install: {PACKAGES}
      maintainer_scripts: run
    steps:
      - run: mkdir -p /out && ls /etc/security/opasswd /etc/environment > /out/made
copy:
  - {{from: "build:/out/made", dst: /made}}
""")
    result = xarch_ok("build", "-v", "-f", str(project / "xarch.yaml"), "-o", f"oci:{tmp_path / 'out'}",
                      cache=tmp_path / "cache")
    assert "[amd64] build: ran 15 maintainer scripts" in result.stderr
    assert image_files(tmp_path / "out", "amd64")["made"].data == b"/etc/environment\n/etc/security/opasswd\n"
