"""`xarch verify` as reprotest: a control build and one build with every variation at once; only a
difference is bisected, down to the variation that causes it (issue 13, "Fast verification").

The non-determinism is real: a `sitecustomize` on PYTHONPATH makes the xarch process that builds
write $TZ into an image label, the way a careless `time.strftime` in the pipeline would."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import docker
import pytest

from tests.integration.test_verify_variations import make_recipe
from tests.support.needs import need_root, need_tool, not_applicable
from xarch import platforms
from xarch.progress import Reporter
from xarch.recipe import load
from xarch.verify.rebuild import VARIATIONS, Conditions, combine, docker_socket, rebuild_and_compare

LEAK = """\
import dataclasses, os
import xarch.build.pipeline as build
_original = build.runtime_config
def _leaky(*args):
    config = _original(*args)
    return dataclasses.replace(config, labels={**config.labels, "leak.tz": os.environ.get("TZ", "")})
build.runtime_config = _leaky
"""

CHEAP = "tz,locale,umask,file_order,mtimes"


def _verify(recipe: Path, names: str) -> dict[str, tuple[str, str]]:
    loaded = load(recipe)
    report = rebuild_and_compare(loaded, (platforms.get("amd64"),), Reporter(quiet=True),
                                 tuple(names.split(",")))
    return {r.name: (r.status, r.note) for r in report.results}


def test_every_variation_at_once_is_one_build_and_all_same(tmp_path: Path) -> None:
    recipe = make_recipe(tmp_path / "probe")
    statuses = _verify(recipe, CHEAP)
    assert {name: status for name, (status, _) in statuses.items()} == dict.fromkeys(CHEAP.split(","), "same")
    assert all(note == f"built with {CHEAP.replace(',', '+')} at once" for _, note in statuses.values())


def test_an_injected_non_determinism_is_caught_and_bisected_to_its_variation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(LEAK)
    paths = [str(hook), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    recipe = make_recipe(tmp_path / "probe")
    statuses = _verify(recipe, CHEAP)
    assert statuses.pop("tz")[0] == "differs"
    assert {name: status for name, (status, _) in statuses.items()} == {
        "locale": "same", "umask": "same", "file_order": "same", "mtimes": "same"}


def test_combine_applies_every_variation() -> None:
    combined = combine(list(VARIATIONS))
    assert combined.env["TZ"] == "Pacific/Kiritimati" and combined.env["LANG"] == "fr_FR.UTF-8"
    assert (combined.umask, combined.strip_group_other, combined.reverse_creation) == (0o077, True, True)
    assert combined.user == "nobody" and combined.fresh_cache and combined.one_cpu
    assert combined.hostname is not None and combined.mtime is not None
    assert combined.folder != Conditions().folder


def test_a_variation_that_cannot_apply_is_not_applicable_never_a_difference(
        tmp_path: Path, dockerd: docker.DockerClient) -> None:
    """The user variation of a recipe with a dockerfile: stage, when nobody cannot reach the socket."""
    need_root("the user variation needs root (as xarch verify itself)")
    need_tool("setpriv")
    socket_path = docker_socket()
    if socket_path is None or os.stat(socket_path).st_mode & 0o002:
        not_applicable(f"the Docker socket {socket_path} is not a Unix socket only its group may use")
    web = tmp_path / "p" / "web"
    web.mkdir(parents=True)
    shutil.copy(need_tool("busybox"), web / "busybox")
    (web / "Dockerfile").write_text("FROM scratch\nCOPY --chmod=0755 busybox /bin/busybox\n")
    (tmp_path / "p" / "xarch.yaml").write_text(
        f"name: d\nplatforms: [{platforms.host().name}]\nepoch: 1\n"
        "stages:\n  web: {dockerfile: web/Dockerfile}\n"
        "copy:\n  - {from: 'web:/bin/busybox', dst: /bin/busybox}\n")
    loaded = load(tmp_path / "p" / "xarch.yaml")
    report = rebuild_and_compare(loaded, (platforms.host(),), Reporter(quiet=True), ("tz", "user"))
    statuses = {r.name: r.status for r in report.results}
    assert statuses == {"tz": "same", "user": "not applicable"}
    assert report.identical
