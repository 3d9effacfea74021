"""Build stages: a root made of packages, files and other stages' outputs, then steps.

A stage never ships. The image (or a later stage) takes paths out of it by name
(`copy: [{from: build:/out/app, dst: /usr/bin/app}]`). Steps run natively, in a cross
root (the host's architecture, the locked cross toolchain, the stage's packages for the
target beside it), or under QEMU (xarch/run/), and their results are cached by
everything that can change them. Which strategy each stage used is recorded in the
image's history (see strategy_record) so verify and rebuilds can use it again. A stage
may instead name a Dockerfile, which docker buildx builds one platform at a time
(xarch/run/buildx.py).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xarch import platforms as platform_data
from xarch.build.contents import add_file_specs
from xarch.build.ignorefile import copy_stage_inputs
from xarch.build.packages import install_set
from xarch.errors import BuildError, XarchError
from xarch.oci.tree import Entry, Tree
from xarch.progress import Reporter
from xarch.recipe import CopySpec, LoadedRecipe, StageSpec, is_root, stage_order
from xarch.run.buildx import BuildxStage, build_stage
from xarch.run.cache import StepCache
from xarch.run.cross import add_cross_files
from xarch.run.options import mask
from xarch.run.rootfs import harvest, harvest_tree
from xarch.run.secretmount import secret_files
from xarch.run.stageroot import Recorder, assemble_root, load_record, mount_farm, record_key, save_record
from xarch.run.steps import StepSpec, Strategy, StrategyUnavailable, choose_strategy, run_stage_steps
from xarch.sources.debian.pkgtrees import tree_digest

if TYPE_CHECKING:
    from xarch.build.pipeline import PlatformBuild

RECORD_PREFIX = "xarch stage "


def strategy_record(stage: str, strategy: str, build: str | None) -> str:
    """The image history line of one stage: `xarch stage build: cross on amd64`,
    `xarch stage build: emulate`, `xarch stage build: native`. A cross build depends on
    the build machine's architecture (its root is made of that architecture's packages)."""
    return f"{RECORD_PREFIX}{stage}: {strategy}" + (f" on {build}" if build else "")


def rebuild_strategy(recorded: str, override: str | None, platform: platform_data.Platform,
                     host: platform_data.Platform, what: str) -> Strategy:
    """How to rebuild a stage whose image recorded RECORDED (strategy_record's text).

    native and emulate give the same bytes (the same target root and tools, on the CPU or
    under QEMU), so either stands for the other: native when PLATFORM is HOST's, else
    emulate. A cross root is of the build machine's architecture, so `cross on amd64` needs
    an amd64 host. OVERRIDE (--strategy) must agree; else StrategyUnavailable names WHAT
    (the stage) and both strategies."""
    strategy, _, build = recorded.partition(" on ")
    if override not in (None, "auto") and (override == "cross") != (strategy == "cross"):
        raise StrategyUnavailable(f"{what}: the image was built with strategy {recorded}, "
                                  f"--strategy asks for {override}")
    if strategy == "cross":
        if build and build != host.name:
            raise StrategyUnavailable(f"{what}: the image was built with strategy {recorded}, "
                                      f"this host is {host.name}: rebuild it on an {build} host")
        return "cross"
    if strategy in ("native", "emulate"):
        return "native" if platform.name == host.name else "emulate"
    raise StrategyUnavailable(f"{what}: the image records an unknown strategy {recorded!r}")


def parse_strategy_records(history: list[dict[str, object]]) -> dict[str, str]:
    """stage → "native" | "emulate" | "cross on BUILD", from an image config's history."""
    found = {}
    for item in history:
        text = str(item.get("created_by", ""))
        if text.startswith(RECORD_PREFIX) and ": " in text:
            stage, _, strategy = text[len(RECORD_PREFIX):].partition(": ")
            found[stage] = strategy
    return found


@dataclass
class StageResult:
    """A finished stage: a folder on disk (steps) or a Tree (buildx)."""

    name: str
    root: Path | None = None
    tree: Tree | None = None

    def take(self, copy: CopySpec, what: str) -> list[Entry]:
        """The entries COPY (`copy: {from: STAGE:PATH, dst:}`) takes out of this stage, placed at
        its dst, owned and moded as COPY says (default 0:0). Raises RecipeError (exit 2, WHAT names
        the field) when the path is not in the stage."""
        if self.root is not None:
            entries = harvest(self.root, copy.path, copy.dst, what)
        else:
            assert self.tree is not None
            entries = harvest_tree(self.tree, copy.path, copy.dst, what)
        if copy.mode is None and copy.owner is None:
            return entries
        changed = []
        for entry in entries:
            uid, gid = copy.owner if copy.owner is not None else (entry.uid, entry.gid)
            mode = copy.mode if copy.mode is not None and entry.type == "file" else entry.mode
            changed.append(replace(entry, uid=uid, gid=gid, mode=mode))
        return changed


class StageRunner:
    """Builds the stages of one recipe for one platform, each at most once."""

    def __init__(self, build: PlatformBuild) -> None:
        self.loaded = build.loaded
        self.platform = build.platform
        self.epoch = build.epoch
        self.lock = build.lock
        self.store = build.store
        self.workdir = build.workdir
        self.reporter = build.reporter
        self.strategy_override = build.inputs.strategy
        self.use_cache = build.inputs.use_cache  # False (--no-cache): steps and buildx run again
        # stage → what a published image recorded (verify --against): used, not chosen.
        self.recorded = build.recorded
        self.options = build.inputs.options  # --build-arg, --secret, --log-lines
        self.python = build.inputs.stage_python  # stage → its python lock (xarch.lock's python_stages)
        self.results: dict[str, StageResult] = {}
        self.used: dict[str, str] = {}  # stage → strategy_record text, in build order

    def copy_into(self, tree: Tree, copies: list[CopySpec], where: str) -> None:
        """Build the stages COPIES name (and the stages those need, each once), then add what each
        copy takes into TREE; WHERE names the recipe field in errors (`copy`, `stages.X.copy`)."""
        for index, copy in enumerate(copies):
            for name in stage_order(self.loaded.recipe, copy.stage):
                self.build(name)
            what = f"{where}[{index}] ({copy.source})"
            entries = self.results[copy.stage].take(copy, what)
            if is_root(copy.dst) and entries and entries[0].type != "dir":
                # where is "copy" or "stages.NAME.copy" (stage names have no dots)
                loc: tuple[str | int, ...] = (*where.split("."), index, "dst")
                raise self.loaded.error(loc, f"{copy.source} is a {entries[0].type}; only a folder can be "
                                        "copied as the image root /")
            for entry in entries:
                tree.add_parents(entry.path)
                # The copy is where the image got it (the ELF check names it), whatever made it.
                tree.add(replace(entry, origin=f"{where}[{index}]"))

    def build(self, name: str) -> StageResult:
        """Stage NAME's result, built once per runner: buildx for a Dockerfile stage, else its root
        and steps. Raises BuildError (a failing step, exit 2) and HostError (exit 3)."""
        if name not in self.results:
            spec = self.loaded.recipe.stages[name]
            if spec.dockerfile:
                self.results[name] = self._buildx(name, spec)
            else:
                self.results[name] = self._steps(name, spec)
        return self.results[name]

    def _strategy(self, name: str, spec: StageSpec) -> tuple[Strategy, str]:
        host = platform_data.host()
        recorded = self.recorded.get(name)
        if recorded is not None:
            strategy = rebuild_strategy(recorded, self.strategy_override, self.platform, host,
                                        f"stage {name!r} ({self.platform.name})")
            return strategy, f"the image recorded {recorded}"
        chosen = self.strategy_override or spec.strategy
        if chosen == "cross" and self.platform.name == host.name:
            # The host's own architecture needs no cross toolchain: decided here, before any download.
            return "native", f"cross asked for, but {host.name} is the host's architecture"
        if chosen == "auto":
            return choose_strategy(self.platform, spec.cross, host)
        return chosen, "asked for"  # type: ignore[return-value]

    def _steps(self, name: str, spec: StageSpec) -> StageResult:
        strategy, why = self._strategy(name, spec)
        label = f"[{self.platform.name}] stage {name}"
        self.reporter.info(f"{label}: {strategy} ({why})")
        build = platform_data.host() if strategy == "cross" and spec.steps else None
        self.used[name] = strategy_record(name, strategy, build.name if build else None)
        base = self.workdir / f"{self.platform.slug}-{name}"
        root = base / "root"
        root.mkdir(parents=True)
        key = self._root_key(name, spec, build)
        record = load_record(self.store, key) if key is not None else None
        if record is not None and mount_farm(self.store, record.farm, base, root):
            for method, line in record.said:  # what making this root said, said again
                getattr(self.reporter, method)(line)
            root_digest = record.digest
        else:
            recorder = Recorder(self.reporter)
            stage_tree = Tree()
            if spec.packages is not None or build is not None:
                assert self.lock is not None
                # cross: the host's architecture runs the tools, the target's packages sit beside them.
                install_set(stage_tree, self.loaded, self.lock, name, self.platform, self.store, self.epoch,
                            recorder, build=build, fetch_say=self.reporter.info)  # type: ignore[arg-type]
            if build is not None:
                add_cross_files(stage_tree, self.platform, self.epoch)
            if spec.python is not None:
                self._python(name, strategy, stage_tree)
            add_file_specs(self.loaded, stage_tree, spec.files, self.platform, ("stages", name, "files"))
            self.copy_into(stage_tree, list(spec.copy_), f"stages.{name}.copy")
            if spec.python is not None:
                from xarch.build.python_stages import check_stage_interpreter

                check_stage_interpreter(stage_tree, self.loaded, name, self.platform)
            lower = assemble_root(stage_tree, self.store, base, root)
            # The root's digest from its tree: cached package files are not read again (pkgtrees).
            root_digest = tree_digest(stage_tree)
            if key is not None and lower is not None:
                save_record(self.store, key, stage_tree, lower, recorder.said)
        if spec.steps and not os.path.lexists(root / "bin" / "sh"):
            raise BuildError(f"stage '{name}' ({self.platform.name}, {strategy}) has no /bin/sh to run its "
                             f"steps: add a shell package (e.g. dash) to stages.{name}.packages")
        if spec.steps:
            source = base / "src"
            # Only what the stage declares it reads (its inputs) is in /src and in the key.
            copy_stage_inputs(self.loaded, name, spec, source)
            inputs = {"root": root_digest}
            steps = [StepSpec(step.run, step.network, tuple(step.env.items()), tuple(step.secrets),
                              tuple(step.ca_certificates), f"stages.{name}.steps[{index}]")
                     for index, step in enumerate(spec.steps)]
            cache = StepCache() if self.use_cache else StepCache(base / "step-cache")
            prefix = f"{name}/{self.platform.name}"
            run_stage_steps(steps, root, self.platform, strategy, source, self.epoch, cache,
                            lambda line: self.reporter.step_output(prefix, line),
                            stage=name, inputs=inputs, args=self.options.args, secrets=self.options.secrets,
                            log_lines=self.options.log_lines,
                            status=lambda text: self.reporter.step_status(f"{label} {text.split(' ', 1)[1]}"))
        return StageResult(name, root=root)

    def _python(self, name: str, strategy: Strategy, stage_tree: Tree) -> None:
        """Stage NAME's locked wheels into its tree, before files: and copy: (which may replace them)
        and before the steps run. Their bytes are in the root's digest, so in every step's key."""
        from xarch.build.python_stages import install_stage_python

        if strategy == "cross":  # --strategy cross for another architecture: its python is the host's
            raise cross_python_error(name, self.platform)
        lock = self.python.get(name)
        if lock is None:
            raise BuildError(f"stage {name!r}: xarch.lock has no python wheels for it; run `xarch lock`")
        install_stage_python(stage_tree, self.loaded, name, lock, self.lock, self.platform, self.store,
                             self.reporter)

    def _root_key(self, name: str, spec: StageSpec, build: platform_data.Platform | None) -> str | None:
        """The key of stage NAME's root record (xarch.run.stageroot) when its root is made of locked
        packages alone (no files:, copy: or python:) and may be an overlay; else None (the root is
        made every time)."""
        from xarch.build.packages import selections
        from xarch.run import overlay
        from xarch.run.sandbox import host_owner

        selection = selections(self.loaded).get(name)
        if (not overlay.available() or spec.files or spec.copy_ or spec.python is not None
                or self.lock is None or (spec.packages is None and build is None)
                or (selection is not None and selection.maintainer_scripts == "run")):
            return None
        if build is None:
            entries = self.lock.entries(self.platform.name, name)
        else:
            entries = self.lock.cross_entries(self.platform.name, build.name, name)
        return record_key({
            "stage": name, "selection": repr(selection), "platform": repr(self.platform),
            "build": repr(build), "epoch": self.epoch, "owner": host_owner(),
            "packages": [[p.name, p.version, p.architecture, p.sha256] for p in entries],
        })

    def _buildx_stage(self, name: str, spec: StageSpec) -> BuildxStage:
        assert spec.dockerfile is not None
        folder = self.loaded.folder
        dockerfile = folder / spec.dockerfile
        if not dockerfile.is_file():
            raise self.loaded.error(("stages", name, "dockerfile"), f"{spec.dockerfile}: no such file")
        context = folder / spec.context if spec.context else dockerfile.parent
        # The recipe's args (after --build-arg) reach the Dockerfile's ARGs; the stage's build_args win.
        build_args = {**self.options.args, **spec.build_args}
        return BuildxStage(dockerfile=dockerfile, context=context, build_args=build_args,
                           target=spec.target, builder=spec.builder, source_date_epoch=self.epoch,
                           no_cache=not self.use_cache)

    def image_config(self, name: str) -> dict[str, Any]:
        """The image config (Docker's Config object) the Dockerfile stage NAME ends with."""
        from xarch.run.buildx_config import stage_config

        stage = self._buildx_stage(name, self.loaded.recipe.stages[name])
        self.reporter.info(f"[{self.platform.name}] stage {name}: its image config (config.from)")
        return stage_config(stage, self.platform.oci, self.workdir / f"{self.platform.slug}-{name}-config",
                            log=self.reporter.detail)

    def _buildx(self, name: str, spec: StageSpec) -> StageResult:
        stage = self._buildx_stage(name, spec)
        label = f"[{self.platform.name}] stage {name}"
        workdir = self.workdir / f"{self.platform.slug}-{name}-buildx"
        workdir.mkdir(parents=True)
        masks = self.options.masks()
        started = time.monotonic()
        # Every --secret is offered to the Dockerfile (RUN --mount=type=secret,id=ID), as buildx does.
        with secret_files(self.options.secrets) as files:
            stage = replace(stage, secrets=files)
            self.reporter.step_status(f"{label}: running (docker buildx build)")
            prefix = f"{name}/{self.platform.name}"
            try:
                trees = build_stage(stage, [self.platform.name], workdir,
                                    log=lambda line: self.reporter.step_output(prefix, mask(line, masks)))
            except XarchError as error:
                if not masks:
                    raise
                masked = BuildError(mask(str(error), masks))
                masked.exit_code = error.exit_code  # a missing buildx stays exit 3
                raise masked from None
        self.reporter.step_status(f"{label}: done in {time.monotonic() - started:.1f} s")
        tree = trees.get(self.platform.name)
        if tree is None:
            raise BuildError(f"stage {name}: buildx returned nothing for {self.platform.name}")
        return StageResult(name, tree=tree)


def cross_python_error(name: str, platform: platform_data.Platform) -> BuildError:
    """A stage with python: cannot run cross: its wheels are the target's, its python the build machine's."""
    return BuildError(f"stage {name!r} ({platform.name}): its python: wheels are locked for the target and "
                      "a cross stage runs the build machine's python; use --strategy native or emulate")


def check_strategies(loaded: LoadedRecipe, platforms: tuple[platform_data.Platform, ...],
                     override: str | None, reporter: Reporter) -> None:
    """Choose each step stage's strategy for every platform and check this host can run it,
    before anything is downloaded: StrategyUnavailable (exit 3) names the stage and platform.
    `cross` for the host's own architecture is `native` (see StageRunner._strategy)."""
    from xarch.build.pipeline import BuildInputs, PlatformBuild
    from xarch.run.steps import check_strategy

    host = platform_data.host()
    used = {name for copy in loaded.recipe.copy_ for name in stage_order(loaded.recipe, copy.stage)}
    for platform in platforms:
        inputs = BuildInputs(loaded, (platform,), 0, strategy=override)
        runner = StageRunner(PlatformBuild(inputs, platform, Path("/nonexistent"), reporter))
        for name, spec in loaded.recipe.stages.items():
            if name in used and spec.steps and not spec.dockerfile:
                strategy, _ = runner._strategy(name, spec)
                if spec.python is not None and strategy == "cross":
                    raise cross_python_error(name, platform)
                try:
                    check_strategy(platform, strategy, host)
                except StrategyUnavailable as error:
                    raise StrategyUnavailable(f"stage {name!r}: {error}") from None
