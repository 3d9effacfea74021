"""Build stages: a root made of packages, files and other stages' outputs, then steps.

A stage never ships. The image (or a later stage) takes paths out of it by name
(`copy: [{from: build:/out/app, dst: /usr/bin/app}]`). Steps run natively, with the
platform's cross toolchain on the host, or under QEMU (xarch/run/), and their results
are cached by everything that can change them. A stage may instead name a Dockerfile,
which docker buildx builds one platform at a time (xarch/run/buildx.py).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from xarch import platforms as platform_data
from xarch.contents import add_file_specs
from xarch.errors import BuildError
from xarch.oci.tree import Entry, Tree
from xarch.packages import install_set
from xarch.progress import Reporter
from xarch.recipe import STAGE_SOURCE_IGNORED, CopySpec, LoadedRecipe, StageSpec, is_root, stage_order
from xarch.rootfs import harvest, harvest_tree, materialize
from xarch.run.buildx import BuildxStage, build_stage
from xarch.run.cache import StepCache, tree_digest
from xarch.run.steps import StepSpec, Strategy, choose_strategy, run_stage_steps
from xarch.sources.debian.lock import Lock
from xarch.store import Store

SOURCE_IGNORE = shutil.ignore_patterns(*STAGE_SOURCE_IGNORED)


@dataclass
class StageResult:
    """A finished stage: a folder on disk (steps) or a Tree (buildx)."""

    name: str
    root: Path | None = None
    tree: Tree | None = None

    def take(self, copy: CopySpec, what: str) -> list[Entry]:
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

    def __init__(self, loaded: LoadedRecipe, platform: platform_data.Platform, epoch: int,
                 lock: Lock | None, store: Store, workdir: Path, reporter: Reporter,
                 strategy_override: str | None = None, use_cache: bool = True) -> None:
        self.loaded = loaded
        self.platform = platform
        self.epoch = epoch
        self.lock = lock
        self.store = store
        self.workdir = workdir
        self.reporter = reporter
        self.strategy_override = strategy_override
        self.use_cache = use_cache  # False (--no-cache): steps and buildx run again
        self.results: dict[str, StageResult] = {}

    def copy_into(self, tree: Tree, copies: list[CopySpec], where: str) -> None:
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
        if name not in self.results:
            spec = self.loaded.recipe.stages[name]
            if spec.dockerfile:
                self.results[name] = self._buildx(name, spec)
            else:
                self.results[name] = self._steps(name, spec)
        return self.results[name]

    def _strategy(self, name: str, spec: StageSpec) -> tuple[Strategy, str]:
        chosen = self.strategy_override or spec.strategy
        if chosen == "auto":
            return choose_strategy(self.platform, spec.cross, platform_data.host())
        return chosen, "asked for"  # type: ignore[return-value]

    def _steps(self, name: str, spec: StageSpec) -> StageResult:
        strategy, why = self._strategy(name, spec)
        label = f"[{self.platform.name}] stage {name}"
        self.reporter.info(f"{label}: {strategy} ({why})")
        base = self.workdir / f"{self.platform.slug}-{name}"
        root, sysroot = base / "root", None
        root.mkdir(parents=True)
        stage_tree = Tree()
        if spec.packages is not None:
            assert self.lock is not None
            if strategy == "cross":
                # The host runs the tools; the target's packages form the sysroot to build against.
                sysroot = base / "sysroot"
                sysroot.mkdir()
                sysroot_tree = Tree()
                install_set(sysroot_tree, self.loaded, self.lock, name, self.platform, self.store, self.epoch,
                            self.reporter)
                materialize(sysroot_tree, sysroot)
            else:
                install_set(stage_tree, self.loaded, self.lock, name, self.platform, self.store, self.epoch,
                            self.reporter)
        add_file_specs(self.loaded, stage_tree, spec.files, self.platform, ("stages", name, "files"))
        self.copy_into(stage_tree, list(spec.copy_), f"stages.{name}.copy")
        materialize(stage_tree, root)
        if spec.steps and strategy != "cross" and not (root / "bin" / "sh").is_symlink() \
                and not (root / "bin" / "sh").exists():
            raise BuildError(f"stage '{name}' ({self.platform.name}, {strategy}) has no /bin/sh to run its "
                             f"steps: add a shell package (e.g. dash) to stages.{name}.packages")
        if spec.steps:
            source = base / "src"
            shutil.copytree(self.loaded.folder / spec.source, source, symlinks=True, ignore=SOURCE_IGNORE)
            inputs = {"root": tree_digest(root), "sysroot": tree_digest(sysroot) if sysroot else None}
            steps = [StepSpec(step.run, step.network) for step in spec.steps]
            cache = StepCache() if self.use_cache else StepCache(base / "step-cache")
            run_stage_steps(steps, root, self.platform, strategy, source, self.epoch, cache,
                            lambda line: self.reporter.detail(f"{label}: {line}"),
                            stage=name, inputs=inputs, sysroot=sysroot)
        return StageResult(name, root=root)

    def _buildx(self, name: str, spec: StageSpec) -> StageResult:
        assert spec.dockerfile is not None
        folder = self.loaded.folder
        dockerfile = folder / spec.dockerfile
        if not dockerfile.is_file():
            raise self.loaded.error(("stages", name, "dockerfile"), f"{spec.dockerfile}: no such file")
        context = folder / spec.context if spec.context else dockerfile.parent
        stage = BuildxStage(dockerfile=dockerfile, context=context, build_args=dict(spec.build_args),
                            target=spec.target, builder=spec.builder, source_date_epoch=self.epoch,
                            no_cache=not self.use_cache)
        self.reporter.info(f"[{self.platform.name}] stage {name}: docker buildx build")
        workdir = self.workdir / f"{self.platform.slug}-{name}-buildx"
        workdir.mkdir(parents=True)
        trees = build_stage(stage, [self.platform.name], workdir, log=self.reporter.detail)
        tree = trees.get(self.platform.name)
        if tree is None:
            raise BuildError(f"stage {name}: buildx returned nothing for {self.platform.name}")
        return StageResult(name, tree=tree)
