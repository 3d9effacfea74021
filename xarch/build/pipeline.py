"""The build pipeline: recipe → per-platform trees → layers → images → one index."""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xarch.build.imagecache import ImageCache, cache_key, cacheable
from xarch.oci.digest import canonical_json, sha256_digest
from xarch.oci.index import build_index
from xarch.oci.layout import Artifact
from xarch.oci.store import Store
from xarch.run.options import BuildOptions
from xarch.run.overlay import stage_mounts

# What only an image that is built (not taken from the image cache) needs — the package
# installer, the ELF check (elftools), layering and the layer writer — is imported where it runs:
# an unchanged rebuild loads none of it (tests/unit/test_startup_imports.py).
if TYPE_CHECKING:
    from xarch.oci.image import Image, RuntimeConfig
    from xarch.oci.layer import Layer
    from xarch.oci.tree import Tree
    from xarch.platforms import Platform
    from xarch.progress import Reporter
    from xarch.recipe import LoadedRecipe
    from xarch.sources.debian.lock import Lock
    from xarch.sources.python.lock import PythonLock


@dataclass(frozen=True)
class BuildInputs:
    """Everything one build reads besides the host: the loaded recipe, the platforms to build (in
    the recipe's order), the epoch (SOURCE_DATE_EPOCH, seconds), the locks, the store, and the
    command's choices (--strategy, --no-cache, --build-arg/--secret/--label). Made once per command.
    """

    loaded: LoadedRecipe
    platforms: tuple[Platform, ...]
    epoch: int
    lock: Lock | None = None  # xarch.lock, when the recipe has packages
    strategy: str | None = None  # --strategy: overrides every stage's
    store: Store = field(default_factory=Store)
    use_cache: bool = True  # reuse a finished image whose every input is unchanged
    # platform name → stage → strategy a published image recorded (verify --against uses it)
    recorded: dict[str, dict[str, str]] = field(default_factory=dict)
    options: BuildOptions = field(default_factory=BuildOptions)  # --build-arg, --secret, --log-lines
    python: PythonLock | None = None  # xarch.lock's python section, when the recipe has python:
    # stage name → its python lock (xarch.lock's python_stages), for stages with python:
    stage_python: dict[str, PythonLock] = field(default_factory=dict)


@dataclass(frozen=True)
class PlatformBuild:
    """One platform's build: the build's inputs, the platform, the folder its stage roots live in
    (until every layer is written) and where it reports. Made once per platform by `build` and
    handed whole to every part of the pipeline instead of loose parameters."""

    inputs: BuildInputs
    platform: Platform
    workdir: Path
    reporter: Reporter

    @property
    def loaded(self) -> LoadedRecipe:
        return self.inputs.loaded

    @property
    def epoch(self) -> int:
        """SOURCE_DATE_EPOCH of this build, seconds since 1970."""
        return self.inputs.epoch

    @property
    def lock(self) -> Lock | None:
        return self.inputs.lock

    @property
    def store(self) -> Store:
        return self.inputs.store

    @property
    def recorded(self) -> dict[str, str]:
        """stage → strategy the published image recorded for this platform (verify --against)."""
        return self.inputs.recorded.get(self.platform.name, {})


def runtime_config(loaded: LoadedRecipe, stage_config: dict[str, Any] | None = None,
                   labels: dict[str, str] | None = None) -> RuntimeConfig:
    """The recipe's `config:`, over STAGE_CONFIG (the Dockerfile stage `config: {from:}` names);
    LABELS (--label) are added over both."""
    from xarch.build.stageconfig import merged_config
    from xarch.oci.image import RuntimeConfig

    merged = merged_config(loaded, stage_config)
    if labels:
        merged["labels"] = {**(merged.get("labels") or {}), **labels}
    return RuntimeConfig(**merged)


def platform_tree(build: PlatformBuild) -> tuple[Tree, list[str]]:
    """Everything the image holds, in the order later parts may replace earlier ones:
    packages, Python wheels, accounts, the recipe's files, then what is copied out of stages; and the
    strategy record of each stage that ran steps (xarch.build.stages.strategy_record)."""
    from xarch.build.contents import recipe_tree
    from xarch.build.packages import IMAGE_SET, add_accounts, install_set
    from xarch.oci.tree import Tree

    inputs, platform, reporter = build.inputs, build.platform, build.reporter
    loaded = inputs.loaded
    tree = Tree()
    notes: list[str] = []
    if loaded.recipe.packages is not None:
        assert inputs.lock is not None
        install_set(tree, loaded, inputs.lock, IMAGE_SET, platform, inputs.store, inputs.epoch, reporter)
    if inputs.python is not None:
        from xarch.build.python import install_python

        install_python(tree, loaded, inputs.python, inputs.lock, platform, inputs.store, reporter)
    add_accounts(tree, loaded, inputs.epoch)
    recipe_tree(loaded, platform, tree)
    if loaded.recipe.copy_:
        from xarch.build.stages import StageRunner  # the execution layer loads only when a stage runs

        runner = StageRunner(build)
        runner.copy_into(tree, list(loaded.recipe.copy_), "copy")
        notes = list(runner.used.values())
    if inputs.python is not None:
        from xarch.build.python import check_interpreter

        check_interpreter(tree, loaded, platform)
    return tree, notes


def stage_image_config(build: PlatformBuild) -> dict[str, Any] | None:
    """The final image config of the Dockerfile stage `config: {from: STAGE}` names (None: no from)."""
    name = build.loaded.recipe.config.from_
    if name is None:
        return None
    from xarch.build.stages import StageRunner

    # Its own folder, and none of the image stages' recorded strategies or options: only the config is read.
    inputs = replace(build.inputs, recorded={}, options=BuildOptions(), stage_python={})
    return StageRunner(replace(build, inputs=inputs, workdir=build.workdir / "config")).image_config(name)


def build_platform(build: PlatformBuild) -> Image:
    """The image of one platform: from the image cache when no input changed, else built.

    Raises what the parts raise: RecipeError/InputError (exit 2), BuildError (a failing step, 2),
    HostError (a missing tool, 3), NetworkError (4)."""
    inputs, platform, reporter = build.inputs, build.platform, build.reporter
    cache, key = None, None
    if inputs.use_cache and cacheable(inputs.loaded):
        cache = ImageCache(inputs.store)
        key = cache_key(inputs.loaded, platform, inputs.epoch, inputs.lock, inputs.strategy, inputs.python,
                        inputs.stage_python)
        if inputs.options.args or inputs.options.labels:
            # --build-arg and --label values change the image; the recipe part of the key has only defaults.
            extra = {"image": key, "args": inputs.options.args, "labels": inputs.options.labels}
            key = sha256_digest(canonical_json(extra))
        cached = cache.get(key)
        if cached is not None:
            reporter.detail(f"[{platform.name}] no input changed: image {key} from the cache")
            return cached
    image = _build_platform(build)
    if cache is not None and key is not None:
        cache.put(key, image)
    return image


def full_tree(build: PlatformBuild) -> tuple[Tree, list[str]]:
    """platform_tree with every entry settled where the image's symlinks put it: what the image
    holds before any trace minimizes it."""
    from xarch.build.placement import settle

    tree, notes = platform_tree(build)
    for old, new in settle(tree, build.loaded):
        build.reporter.detail(f"[{build.platform.name}] /{old} is /{new} in the image (through its symlinks)")
    return tree, notes


def _build_platform(build: PlatformBuild) -> Image:
    from xarch.build.elfcheck import check_image
    from xarch.build.layering import split_layers
    from xarch.build.treecheck import check_extractable
    from xarch.oci.compress import compressor_id
    from xarch.oci.image import build_image
    from xarch.oci.layer import write_layer

    inputs, platform, reporter = build.inputs, build.platform, build.reporter
    recipe = inputs.loaded.recipe
    algorithm, level = recipe.compression.algorithm, recipe.compression.level
    tree, notes = full_tree(build)
    if recipe.trace is not None:
        from xarch.trace.apply import apply_trace

        minimized = apply_trace(inputs.loaded, tree, platform.name)
        reporter.detail(f"[{platform.name}] xarch.trace keeps {minimized.kept} entries, drops "
                        f"{len(minimized.dropped)}")
    check_extractable(inputs.loaded, tree)
    check_image(inputs.loaded, tree, platform, inputs.lock)
    layers: list[Layer] = []
    parts = split_layers(tree, recipe.layers)
    # Layers are written concurrently (each also compresses on every core): the tar and hashing of
    # one overlap another's. The image lists them in the recipe's order whatever finishes first.
    with ThreadPoolExecutor(max(1, len(parts)), thread_name_prefix="xarch-layer") as pool:
        written = [pool.submit(write_layer, name, entries, inputs.epoch, inputs.store, algorithm, level)
                   for name, entries in parts]
        try:
            done = [future.result() for future in written]
        except BaseException:
            for future in written:
                future.cancel()
            raise
    for (name, _), layer in zip(parts, done, strict=True):
        reporter.detail(
            f"[{platform.name}] layer {name}: {layer.entry_count} entries, "
            f"{layer.uncompressed_size} bytes → {layer.size} {algorithm}, {layer.descriptor.digest}"
        )
        layers.append(layer)
    return build_image(
        platform.oci_platform(),
        layers,
        runtime_config(inputs.loaded, stage_image_config(build),
                       inputs.options.labels),
        inputs.epoch,
        compressor_id(level, algorithm),
        recipe.annotations.manifest,
        notes,
    )


def build(inputs: BuildInputs, reporter: Reporter) -> Artifact:
    """Build every platform of INPUTS and the OCI image index naming them (image-spec
    image-index.md), in the recipe's platform order. Blobs go into INPUTS.store.

    Raises what build_platform raises; nothing is written outside the store."""
    images: list[Image] = []
    # Stage roots live here until every layer is written (tree entries point into them); they may
    # be overlay mounts (xarch.run.overlay), unmounted before the folder goes.
    with tempfile.TemporaryDirectory(prefix="xarch-build-") as workdir, stage_mounts(), \
            reporter.tasks() as board:
        from xarch.build.ignorefile import never_source_also

        never_source_also(Path(workdir))  # a TMPDIR inside a source folder puts no stage root in the image
        task = board.add(f"building {inputs.loaded.recipe.name}", len(inputs.platforms))

        def one(platform: Platform) -> Image:
            image = build_platform(PlatformBuild(inputs, platform, Path(workdir) / platform.slug, reporter))
            board.advance(task, f"{platform.name} done")
            return image

        # Platforms of a recipe without stages build concurrently: unpacking .debs (lzma), hashing and
        # compressing release the GIL. Images keep the recipe's order whatever finishes first. With
        # stages they stay in sequence: a step already uses the machine, and a SIGTERM must not wait
        # for another platform's step.
        if len(inputs.platforms) > 1 and not inputs.loaded.recipe.copy_:
            with ThreadPoolExecutor(len(inputs.platforms), thread_name_prefix="xarch-platform") as pool:
                futures = [pool.submit(one, platform) for platform in inputs.platforms]
                try:
                    images = [future.result() for future in futures]
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
        else:
            images = [one(platform) for platform in inputs.platforms]
    descriptors = [image.manifest_descriptor for image in images]
    index = build_index(descriptors, inputs.loaded.recipe.annotations.index)
    return Artifact(index, tuple(images), inputs.loaded.recipe.tag)
