"""`xarch verify`: rebuild in isolated folders under varied conditions, compare digests.

Each rebuild is a separate process (`python -m xarch build`) on a fresh copy of the
recipe's folder, so that nothing is shared but the inputs. The variations are those a
different machine would bring: folder path, umask, TZ, LANG/LC_ALL, the order in which
the source files were created, their mtimes and their group/other permission bits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from xarch.errors import BuildError
from xarch.oci.layout import LayoutReader
from xarch.platforms import Platform
from xarch.progress import Reporter
from xarch.recipe import LoadedRecipe, resolve_epoch
from xarch.summary import platform_name


@dataclass(frozen=True)
class Variation:
    name: str
    umask: int
    env: dict[str, str]
    reverse_creation: bool  # create the copied source files in reverse order
    mtime: int | None  # set every copied file's mtime to this (None: keep the copy's)
    strip_group_other: bool  # as a checkout under umask 077 would leave them


VARIATIONS = (
    Variation("A", 0o022, {"TZ": "UTC", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}, False, None, False),
    Variation("B", 0o077, {"TZ": "Pacific/Kiritimati", "LANG": "fr_FR.UTF-8", "LC_ALL": "fr_FR.UTF-8"},
              True, 1_234_567_890, True),
)


@dataclass
class Difference:
    platform: str
    what: str
    first: str
    second: str


@dataclass
class VerifyReport:
    builds: dict[str, dict[str, str]] = field(default_factory=dict)  # variation → {name: digest}
    difference: Difference | None = None

    @property
    def identical(self) -> bool:
        return self.difference is None

    def to_json(self) -> dict[str, Any]:
        diff = self.difference.__dict__ if self.difference else None
        return {"identical": self.identical, "builds": self.builds, "first_difference": diff}


def copy_source(source: Path, target: Path, variation: Variation) -> None:
    files = sorted(p for p in source.rglob("*") if not _is_output(p, source))
    if variation.reverse_creation:
        files.reverse()
    target.mkdir(parents=True)
    for path in files:
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            destination.symlink_to(os.readlink(path))
        elif path.is_dir():
            destination.mkdir(exist_ok=True)
        else:
            shutil.copyfile(path, destination)
            mode = path.stat().st_mode & 0o7777
            os.chmod(destination, mode & ~0o077 if variation.strip_group_other else mode)
        if variation.mtime is not None and not path.is_symlink():
            os.utime(destination, (variation.mtime, variation.mtime))


def _is_output(path: Path, source: Path) -> bool:
    parts = path.relative_to(source).parts
    return bool(parts) and parts[0] in ("dist", ".git", ".tox", "__pycache__")


def _rebuild(loaded: LoadedRecipe, platforms: tuple[Platform, ...], epoch: int, variation: Variation,
             workdir: Path) -> Path:
    source = workdir / f"src-{variation.name}" / "recipe"
    copy_source(loaded.folder, source, variation)
    output = workdir / f"out-{variation.name}"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LC_", "LANG", "TZ"))}
    env.update(variation.env, SOURCE_DATE_EPOCH=str(epoch))
    command = [sys.executable, "-m", "xarch.cli", "build", "-q", "-f", str(source / loaded.path.name),
               "--platform", ",".join(p.name for p in platforms), "--output", f"oci:{output}"]
    result = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True,
                            preexec_fn=lambda: os.umask(variation.umask), check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BuildError(f"rebuild {variation.name} failed: {last}")
    return output


def _digests(reader: LayoutReader) -> dict[str, str]:
    top = reader.top_index()["manifests"][0]
    result = {"index": top["digest"]}
    for descriptor in json.loads(reader.blob(top["digest"]))["manifests"]:
        result[platform_name(descriptor["platform"])] = descriptor["digest"]
    return result


def first_difference(first: LayoutReader, second: LayoutReader) -> Difference | None:
    """Walk both layouts index → manifest → config → layers; name the first blob that differs."""
    top_a, top_b = first.top_index()["manifests"][0], second.top_index()["manifests"][0]
    if top_a["digest"] == top_b["digest"]:
        return None
    manifests_a = json.loads(first.blob(top_a["digest"]))["manifests"]
    manifests_b = json.loads(second.blob(top_b["digest"]))["manifests"]
    for desc_a, desc_b in zip(manifests_a, manifests_b, strict=False):
        plat = platform_name(desc_a.get("platform") or {})
        if desc_a["digest"] == desc_b["digest"]:
            continue
        man_a, man_b = first.json_blob(desc_a["digest"]), second.json_blob(desc_b["digest"])
        if man_a["config"]["digest"] != man_b["config"]["digest"]:
            return Difference(plat, "config", man_a["config"]["digest"], man_b["config"]["digest"])
        for number, (layer_a, layer_b) in enumerate(zip(man_a["layers"], man_b["layers"], strict=False)):
            if layer_a["digest"] != layer_b["digest"]:
                return Difference(plat, f"layer {number}", layer_a["digest"], layer_b["digest"])
        return Difference(plat, "manifest", desc_a["digest"], desc_b["digest"])
    return Difference("-", "index", top_a["digest"], top_b["digest"])


def rebuild_and_compare(
    loaded: LoadedRecipe, platforms: tuple[Platform, ...], reporter: Reporter
) -> VerifyReport:
    epoch, _ = resolve_epoch(loaded)
    report = VerifyReport()
    with tempfile.TemporaryDirectory(prefix="xarch-verify-") as tmp:
        readers = []
        for variation in VARIATIONS:
            reporter.info(f"rebuild {variation.name}: umask {variation.umask:04o}, TZ={variation.env['TZ']}, "
                          f"LANG={variation.env['LANG']}")
            output = _rebuild(loaded, platforms, epoch, variation, Path(tmp))
            reader = LayoutReader(output)
            readers.append(reader)
            report.builds[variation.name] = _digests(reader)
        report.difference = first_difference(readers[0], readers[1])
    return report


def print_report(report: VerifyReport, as_json: bool, console: Console) -> None:
    if as_json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
        return
    names = list(report.builds)
    table = Table(title="xarch verify")
    table.add_column("image")
    for name in names:
        table.add_column(f"rebuild {name}", no_wrap=True)
    table.add_column("same")
    for key in report.builds[names[0]]:
        values = [report.builds[name].get(key, "-") for name in names]
        table.add_row(key, *values, "yes" if len(set(values)) == 1 else "NO")
    console.print(table)
    if report.difference:
        d = report.difference
        console.print(f"first difference: {d.platform} {d.what}: {d.first} != {d.second}", highlight=False)
    else:
        console.print("all digests identical", highlight=False)
