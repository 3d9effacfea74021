"""Compare two images down to the file, and say which digests each difference changes.

Digests nest: a file is inside a layer blob (and its diff_id, which the config lists), the
config and layer blobs are named by the manifest, the manifest by the index. So a file
difference changes layer N of P, the config of P, the manifest of P and the index; an
index annotation changes the index alone; the layout's tag (index.json) changes none.
Blobs with equal digests are not opened: equal digests mean equal bytes.

Two images are identical only when their digests are: the index's, or with --platform each
compared platform's manifest (a docker-archive, which stores neither: its config and layers). A
digest that differs although no field, file or layer explains it is reported as a difference of
the document's bytes alone (whitespace, key order, a duplicate key), never dropped. A layer said
to be recompressed only (equal diff_ids) is read through both sides' tars first, each checked
against its diff_id.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from xarch import platforms
from xarch.diff.layers import FileRecord, LayerFiles, read_layer
from xarch.diff.sources import DiffError, ImageSource, LayerRef, PlatformImage, platform_key
from xarch.errors import XarchError


@dataclass(frozen=True)
class Difference:
    """One difference between images A and B: the platform ("" above platforms), where in the image
    (layout, index, manifest, config, layer N), the item (a path or a field), what differs, both
    values, the digests it changes (innermost first), and a unified diff for a small text file.
    """

    platform: str  # "" when the difference is above any one platform (index, layout)
    where: str  # "layout", "index", "manifest", "config", "layer 1 (xarch layer app)"
    item: str  # a path in the layer, or a field such as "config.Env PATH" or "annotations.x"
    field: str  # "content", "mode", "added", "removed", "value", …
    a: Any
    b: Any
    changes: tuple[str, ...]  # the digests this difference changes, innermost first
    diff: str | None = None  # a unified diff of a small changed text file (xarch.diff.textdiff)

    def to_json(self) -> dict[str, Any]:
        """The difference as a JSON object (`diff --json`'s differences[] entries)."""
        result = asdict(self)
        result["changes"] = list(self.changes)
        return result


@dataclass
class DiffResult:
    """The diff of image A against image B (their labels): the differences in walking order,
    {digest name: (A's digest, B's digest)}, and notes about what could not be compared.
    """

    a: str
    b: str
    differences: list[Difference] = field(default_factory=list)
    digests: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # name → (A, B)
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """No difference: the compare walk reports every digest that differs (see _Comparer.explain)."""
        return not self.differences

    def changed_digests(self) -> list[str]:
        """Names of the digests that differ because of some difference, first seen first, no repeats."""
        seen: dict[str, None] = {}
        for difference in self.differences:
            for name in difference.changes:
                seen.setdefault(name, None)
        return list(seen)

    def to_json(self) -> dict[str, Any]:
        """The result as `diff --json` prints it (a, b, identical, changed_digests, digests, ...)."""
        return {
            "a": self.a,
            "b": self.b,
            "identical": self.identical,
            "changed_digests": self.changed_digests(),
            "digests": {name: {"a": a, "b": b} for name, (a, b) in self.digests.items()},
            "differences": [d.to_json() for d in self.differences],
            "notes": self.notes,
        }


def _match_key(platform: str) -> str:
    # arm64's only variant is v8; images written with and without it are the same platform.
    return platform.removesuffix("/v8") if "/arm64/" in platform + "/" else platform


def platform_matches(image_platform: str, wanted: str) -> bool:
    """Whether IMAGE_PLATFORM ("linux/arm64/v8") is what --platform WANTED names ("arm64", "linux/arm64")."""
    wanted = wanted.strip()
    candidates = {_match_key(wanted), _match_key(f"linux/{wanted}")}
    try:
        candidates.add(_match_key(platform_key(platforms.get(wanted).oci_platform())))
    except (platforms.UnknownPlatform, KeyError, ValueError):
        pass  # not a name from platforms/: the literal forms above still match
    return _match_key(image_platform) in candidates


class _Comparer:
    def __init__(self, a: ImageSource, b: ImageSource, progress: Callable[[str], None]) -> None:
        self.a, self.b, self.progress = a, b, progress
        self.result = DiffResult(a.label, b.label)
        self.has_index = a.index is not None or b.index is not None
        self.has_manifest = any(i.manifest is not None for i in a.images + b.images)

    # --- attribution -------------------------------------------------------------------------
    def chain(self, level: str, platform: str = "", layer: int | None = None,
              config: bool = True) -> tuple[str, ...]:
        names: list[str] = []
        if level == "layer":
            names.append(f"layer {layer} of {platform}")
            if config:  # a layer whose content changes has a new diff_id in the config
                names.append(f"config of {platform}")
        elif level == "config":
            names.append(f"config of {platform}")
        if level in ("layer", "config", "manifest") and self.has_manifest:
            names.append(f"manifest of {platform}")
        if level in ("layer", "config", "manifest", "index") and self.has_index:
            names.append("index")
        return tuple(names)

    def add(self, platform: str, where: str, item: str, field_name: str, a: Any, b: Any,
            changes: tuple[str, ...]) -> None:
        self.result.differences.append(Difference(platform, where, item, field_name, a, b, changes))

    # --- levels ------------------------------------------------------------------------------
    def run(self, wanted: str | None) -> DiffResult:
        a, b = self.a, self.b
        self.result.digests["index"] = (a.index_digest, b.index_digest)
        # A docker-archive has RepoTags instead of a layout tag, and a registry image is named by the
        # reference it was pulled by: neither tag is part of the image, so only layouts compare tags.
        kinds = {a.kind, b.kind}
        if a.tag != b.tag and not kinds & {"docker-archive", "registry"}:
            self.add("", "layout", "index.json ref.name (tag)", "value", a.tag, b.tag, ())
        if a.index is not None and b.index is not None and a.index_digest != b.index_digest:
            self.compare_index(a.index, b.index)
        elif (a.index is None) != (b.index is None):
            self.result.notes.append(f"only {'A' if a.index is not None else 'B'} has an image index; "
                                     "index fields were not compared")
        images_a = _select(a.images, wanted)
        images_b = _select(b.images, wanted)
        if wanted and not images_a and not images_b:
            names_a, names_b = (", ".join(i.platform for i in s.images) for s in (a, b))
            raise DiffError(f"--platform {wanted}: neither image has it (A: {names_a}; B: {names_b})")
        self.compare_counts(a, b, wanted)
        for key in list(images_a) + [k for k in images_b if k not in images_a]:
            image_a, image_b = images_a.get(key), images_b.get(key)
            if image_a is None or image_b is None:
                present = image_a or image_b
                assert present is not None
                self.add(present.platform, "index", "platform", "removed" if image_b is None else "added",
                         present.platform if image_a else None, present.platform if image_b else None,
                         ("index",) if self.has_index else ())
                continue
            self.compare_image(image_a, image_b)
        if not wanted:  # with --platform, the platforms' manifests are the identity, not the index
            self.explain("", "index", "index", a.index_digest, b.index_digest, ("index",))
        return self.result

    def explain(self, platform: str, where: str, name: str, digest_a: str | None, digest_b: str | None,
                changes: tuple[str, ...]) -> None:
        """When DIGEST_A and DIGEST_B (of digest NAME) differ and no difference found so far changes NAME,
        report that the document differs in its bytes only: no digest difference goes unreported."""
        if digest_a is None or digest_b is None or digest_a == digest_b:
            return
        if any(name in difference.changes for difference in self.result.differences):
            return
        self.add(platform, where, "(document bytes)", "differs in its bytes only", digest_a, digest_b,
                 changes)
        self.result.notes.append(f"{name} differs in its bytes only: {digest_a} and {digest_b} "
                                 "(every field compared is equal)")

    def compare_counts(self, a: ImageSource, b: ImageSource, wanted: str | None) -> None:
        """Report a platform listed more times in one image than in the other (an index entry or a
        docker-archive's manifest.json entry repeated): the platform pairing below sees one of each."""
        counts_a, counts_b = _counts(a.images, wanted), _counts(b.images, wanted)
        for key in list(counts_a) + [k for k in counts_b if k not in counts_a]:
            count_a, count_b = counts_a.get(key, 0), counts_b.get(key, 0)
            if count_a and count_b and count_a != count_b:
                where = "index" if self.has_index else "manifest.json"
                self.add(key, where, "platform entries", "count", count_a, count_b,
                         ("index",) if self.has_index else ())

    def compare_index(self, index_a: dict[str, Any], index_b: dict[str, Any]) -> None:
        self.compare_mapping("", "index", "annotations", index_a.get("annotations") or {},
                             index_b.get("annotations") or {}, ("index",))
        for key in sorted((set(index_a) | set(index_b)) - {"annotations", "manifests"}):
            if index_a.get(key) != index_b.get(key):
                self.add("", "index", key, "value", index_a.get(key), index_b.get(key), ("index",))
        order_a = [_descriptor_platform(d) for d in index_a.get("manifests") or []]
        order_b = [_descriptor_platform(d) for d in index_b.get("manifests") or []]
        if sorted(order_a) == sorted(order_b) and order_a != order_b:
            self.add("", "index", "manifests", "platform order", order_a, order_b, ("index",))
        descriptors_b = {_descriptor_platform(d): d for d in index_b.get("manifests") or []}
        by_digest_b = {d.get("digest"): d for d in index_b.get("manifests") or []}
        for descriptor_a in index_a.get("manifests") or []:
            descriptor_b = descriptors_b.get(_descriptor_platform(descriptor_a))
            if descriptor_b is None:  # an entry without a platform is paired by the manifest it names
                candidate = by_digest_b.get(descriptor_a.get("digest"))
                if candidate is not None and not (descriptor_a.get("platform") and candidate.get("platform")):
                    descriptor_b = candidate
            if descriptor_b is None:
                continue
            platform = _descriptor_platform(descriptor_a if descriptor_a.get("platform") else descriptor_b)
            self.compare_mapping(platform, "index", "manifests[].annotations",
                                 descriptor_a.get("annotations") or {}, descriptor_b.get("annotations") or {},
                                 ("index",))
            for key in _descriptor_keys(descriptor_a, descriptor_b, ("mediaType", "platform", "artifactType"),
                                        ("annotations",)):
                if descriptor_a.get(key) != descriptor_b.get(key):
                    self.add(platform, "index", f"manifests[].{key}", "value", descriptor_a.get(key),
                             descriptor_b.get(key), ("index",))

    def compare_mapping(self, platform: str, where: str, prefix: str, a: dict[str, Any], b: dict[str, Any],
                        changes: tuple[str, ...]) -> None:
        for key in sorted(set(a) | set(b)):
            if key not in b:
                self.add(platform, where, f"{prefix} {key}", "removed", a[key], None, changes)
            elif key not in a:
                self.add(platform, where, f"{prefix} {key}", "added", None, b[key], changes)
            elif a[key] != b[key]:
                self.add(platform, where, f"{prefix} {key}", "value", a[key], b[key], changes)

    def compare_image(self, a: PlatformImage, b: PlatformImage) -> None:
        platform = a.platform
        self.result.digests[f"manifest of {platform}"] = (a.manifest_digest, b.manifest_digest)
        self.result.digests[f"config of {platform}"] = (a.config_digest, b.config_digest)
        for n in range(max(len(a.layers), len(b.layers))):
            self.result.digests[f"layer {n} of {platform}"] = (
                a.layers[n].digest if n < len(a.layers) else None,
                b.layers[n].digest if n < len(b.layers) else None)
        if a.manifest_digest and a.manifest_digest == b.manifest_digest:
            return
        if a.manifest is not None and b.manifest is not None:
            self.compare_manifest(platform, a.manifest, b.manifest)
        if a.config_digest != b.config_digest:
            self.compare_config(platform, a.config, b.config, a.layers, b.layers)
        self.compare_layers(platform, a.layers, b.layers)
        self.explain(platform, "config", f"config of {platform}", a.config_digest, b.config_digest,
                     self.chain("config", platform))
        self.explain(platform, "manifest", f"manifest of {platform}", a.manifest_digest, b.manifest_digest,
                     self.chain("manifest", platform))

    def compare_manifest(self, platform: str, a: dict[str, Any], b: dict[str, Any]) -> None:
        changes = self.chain("manifest", platform)
        self.compare_mapping(platform, "manifest", "annotations", a.get("annotations") or {},
                             b.get("annotations") or {}, changes)
        for key in sorted((set(a) | set(b)) - {"annotations", "config", "layers"}):
            if a.get(key) != b.get(key):
                self.add(platform, "manifest", key, "value", a.get(key), b.get(key), changes)
        for key in _descriptor_keys(a["config"], b["config"], ("mediaType",)):
            if a["config"].get(key) != b["config"].get(key):
                self.add(platform, "manifest", f"config.{key}", "value", a["config"].get(key),
                         b["config"].get(key), changes)
        pairs = zip(a.get("layers") or [], b.get("layers") or [], strict=False)
        for n, (layer_a, layer_b) in enumerate(pairs):
            for key in _descriptor_keys(layer_a, layer_b, ("mediaType", "annotations")):
                if layer_a.get(key) != layer_b.get(key):
                    self.add(platform, "manifest", f"layers[{n}].{key}", "value", layer_a.get(key),
                             layer_b.get(key), changes)

    def compare_config(self, platform: str, a: dict[str, Any], b: dict[str, Any],
                       layers_a: list[LayerRef], layers_b: list[LayerRef]) -> None:
        changes = self.chain("config", platform)
        for key in sorted(set(a) | set(b)):
            value_a, value_b = a.get(key), b.get(key)
            if value_a == value_b:
                continue
            if key == "config" and isinstance(value_a or {}, dict) and isinstance(value_b or {}, dict):
                self.compare_runtime(platform, value_a or {}, value_b or {}, changes)
            elif key == "history" and isinstance(value_a, list) and isinstance(value_b, list):
                for n in range(max(len(value_a), len(value_b))):
                    entry_a = value_a[n] if n < len(value_a) else None
                    entry_b = value_b[n] if n < len(value_b) else None
                    if entry_a != entry_b:
                        self.add(platform, "config", f"history[{n}]", "value", entry_a, entry_b, changes)
            elif key == "rootfs" and isinstance(value_a, dict) and isinstance(value_b, dict):
                # New diff_ids are explained by the layer differences; anything else is reported.
                rest_a = {k: v for k, v in value_a.items() if k != "diff_ids"}
                rest_b = {k: v for k, v in value_b.items() if k != "diff_ids"}
                if rest_a != rest_b:
                    self.add(platform, "config", "rootfs", "value", rest_a, rest_b, changes)
                diff_ids_a, diff_ids_b = value_a.get("diff_ids"), value_b.get("diff_ids")
                if not _diff_ids_explained(diff_ids_a, diff_ids_b, layers_a, layers_b):
                    self.add(platform, "config", "rootfs.diff_ids", "value", diff_ids_a, diff_ids_b, changes)
            else:
                self.add(platform, "config", key, "value", value_a, value_b, changes)

    def compare_runtime(self, platform: str, a: dict[str, Any], b: dict[str, Any],
                        changes: tuple[str, ...]) -> None:
        for key in sorted(set(a) | set(b)):
            value_a, value_b = a.get(key), b.get(key)
            if value_a == value_b:
                continue
            if key == "Env" and isinstance(value_a or [], list) and isinstance(value_b or [], list):
                self.compare_mapping(platform, "config", "config.Env", _env(value_a), _env(value_b), changes)
            elif isinstance(value_a, dict) and isinstance(value_b, dict):
                self.compare_mapping(platform, "config", f"config.{key}", value_a, value_b, changes)
            else:
                self.add(platform, "config", f"config.{key}", "value", value_a, value_b, changes)

    def compare_layers(self, platform: str, layers_a: list[LayerRef], layers_b: list[LayerRef]) -> None:
        for layer_a, layer_b in _match_layers(layers_a, layers_b):
            if layer_a is None or layer_b is None:
                layer = layer_a or layer_b
                assert layer is not None
                where = _layer_label(layer)
                self.add(platform, where, "(whole layer)", "removed" if layer_b is None else "added",
                         layer.digest if layer_a else None, layer.digest if layer_b else None,
                         self.chain("layer", platform, layer.position))
                continue
            if layer_a.digest == layer_b.digest:
                continue
            where = _layer_label(layer_b)
            number = layer_b.position
            if layer_a.diff_id and layer_a.diff_id == layer_b.diff_id:
                self.check_same_content(platform, layer_a, layer_b)
                self.add(platform, where, "(compressed bytes)", "compression only, same content",
                         layer_a.digest, layer_b.digest, self.chain("layer", platform, number, config=False))
                continue
            self.compare_files(platform, where, number, layer_a, layer_b)

    def check_same_content(self, platform: str, layer_a: LayerRef, layer_b: LayerRef) -> None:
        """Read both layers' tars through the read model, each checked against the diff_id both configs
        give, before saying "same content"; DiffError (exit 2) naming the side, platform and layer when
        one is not (a corrupt or foreign compression, bytes after its end)."""
        self.progress(f"checking {platform} layer {layer_b.position}: {_mb(layer_a.size)} and "
                      f"{_mb(layer_b.size)} hold the same tar (streamed)")
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [(side, label, pool.submit(_read_tar, layer))
                       for side, label, layer in (("A", self.a.label, layer_a), ("B", self.b.label, layer_b))]
            for side, label, future in futures:
                try:
                    future.result()
                except XarchError as error:
                    message = str(error) if str(error).startswith(f"{label}:") else f"{label}: {error}"
                    raise DiffError(f"{side} ({platform}): {message}") from None

    def compare_files(self, platform: str, where: str, number: int, layer_a: LayerRef,
                      layer_b: LayerRef) -> None:
        self.progress(f"comparing {platform} {where}: {_mb(layer_a.size)} and {_mb(layer_b.size)} (streamed)")
        # Both streams at once: decompression and hashing release the GIL, so two CPUs halve the wait.
        with ThreadPoolExecutor(max_workers=2) as pool:
            future_a = pool.submit(read_layer, layer_a, self.a.label)
            future_b = pool.submit(read_layer, layer_b, self.b.label)
            files_a, files_b = future_a.result(), future_b.result()
        changes = self.chain("layer", platform, number)
        before = len(self.result.differences)
        for path in _union_in_order(files_a, files_b):
            record_a, record_b = files_a.files.get(path), files_b.files.get(path)
            if record_b is None:
                self.add(platform, where, path, "removed", _summary(record_a), None, changes)
            elif record_a is None:
                self.add(platform, where, path, "added", None, _summary(record_b), changes)
            elif record_a != record_b:
                fields_a, fields_b = record_a.fields(), record_b.fields()
                for name in fields_a:
                    if fields_a[name] != fields_b[name]:
                        self.add(platform, where, path, name, fields_a[name], fields_b[name], changes)
        self.add_text_diffs(before, layer_a, layer_b, files_a, files_b)
        if len(self.result.differences) == before:
            if files_a.order != files_b.order:
                self.add(platform, where, "(entry order)", "order", files_a.order[:20], files_b.order[:20],
                         changes)
            else:
                self.add(platform, where, "(tar encoding)", "headers or padding differ, every file the same",
                         layer_a.diff_id, layer_b.diff_id, changes)


    def add_text_diffs(self, start: int, layer_a: LayerRef, layer_b: LayerRef, files_a: LayerFiles,
                       files_b: LayerFiles) -> None:
        """Give the content differences from index START on a unified diff when both sides are
        small text files (xarch.diff.textdiff)."""
        from xarch.diff.textdiff import MAX_TEXT_DIFFS, TEXT_LIMIT, contents, unified

        positions = [i for i, d in enumerate(self.result.differences[start:], start)
                     if d.field == "content" and files_a.files[d.item].size <= TEXT_LIMIT
                     and files_b.files[d.item].size <= TEXT_LIMIT][:MAX_TEXT_DIFFS]
        if not positions:
            return
        wanted = {self.result.differences[i].item for i in positions}
        data_a, data_b = contents(layer_a, wanted), contents(layer_b, wanted)
        for i in positions:
            difference = self.result.differences[i]
            if difference.item in data_a and difference.item in data_b:
                text = unified(difference.item, data_a[difference.item], data_b[difference.item])
                self.result.differences[i] = replace(difference, diff=text)


def _read_tar(layer: LayerRef) -> None:
    """Stream LAYER's uncompressed tar to its end, checked (xarch.oci.model.Layer.open_uncompressed)
    for the compression its media type names, its diff_id and its blob digest. Raises BlobMismatch
    (exit 2)."""
    with layer.open_tar() as stream:
        while stream.read(1 << 20):
            pass
        stream.verify()  # type: ignore[attr-defined]  # a VerifiedStream


def _counts(images: list[PlatformImage], wanted: str | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for image in images:
        if not wanted or platform_matches(image.platform, wanted):
            counts[_match_key(image.platform)] = counts.get(_match_key(image.platform), 0) + 1
    return counts


def _descriptor_keys(a: dict[str, Any], b: dict[str, Any], first: tuple[str, ...],
                     skip: tuple[str, ...] = ()) -> list[str]:
    """FIRST, then every other key of descriptors A and B sorted, but digest, size and SKIP (compared
    apart: the digest and size by what they name)."""
    rest = sorted((set(a) | set(b)) - set(first) - {"digest", "size"} - set(skip))
    return list(first) + rest


def _diff_ids_explained(a: Any, b: Any, layers_a: list[LayerRef], layers_b: list[LayerRef]) -> bool:
    """Whether diff_ids lists A and B differ only where the layers at those positions differ too (their
    compare reports it); a diff_id changed over an equal layer, or a count unlike the layers', is not."""
    if not isinstance(a, list) or not isinstance(b, list):
        return a == b
    if len(a) != len(layers_a) or len(b) != len(layers_b):
        return a == b
    for n in range(min(len(a), len(b))):
        if a[n] != b[n] and layers_a[n].digest == layers_b[n].digest:
            return False
    return True


def _select(images: list[PlatformImage], wanted: str | None) -> dict[str, PlatformImage]:
    return {_match_key(i.platform): i for i in images if not wanted or platform_matches(i.platform, wanted)}


def _descriptor_platform(descriptor: dict[str, Any]) -> str:
    return _match_key(platform_key(descriptor.get("platform") or {})) or descriptor.get("digest", "?")


def _env(values: list[str] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in values or []:
        key, _, value = str(item).partition("=")
        result[key] = value
    return result


def _layer_label(layer: LayerRef) -> str:
    return f"layer {layer.position} ({layer.name})" if layer.name else f"layer {layer.position}"


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _summary(record: FileRecord | None) -> str | None:
    if record is None:
        return None
    if record.type == "file":
        return f"file {record.size} bytes {record.mode:04o} {record.sha256}"
    if record.type in ("symlink", "hardlink"):
        return f"{record.type} → {record.linkname}"
    return f"{record.type} {record.mode:04o}"


def _union_in_order(a: LayerFiles, b: LayerFiles) -> list[str]:
    seen = dict.fromkeys(a.order)
    for path in b.order:
        seen.setdefault(path, None)
    return list(seen)


def _match_layers(a: list[LayerRef], b: list[LayerRef]) -> list[tuple[LayerRef | None, LayerRef | None]]:
    """Pair layers by history name when every name is distinct on both sides, else by position.

    Matching by name keeps a comparison meaningful when a layer was inserted or removed
    (everything after it moved one position).
    """
    names_a, names_b = [layer.name for layer in a], [layer.name for layer in b]
    by_name = (all(names_a) and all(names_b) and len(set(names_a)) == len(names_a)
               and len(set(names_b)) == len(names_b) and names_a != names_b and set(names_a) & set(names_b))
    if not by_name:
        pairs: list[tuple[LayerRef | None, LayerRef | None]] = []
        for n in range(max(len(a), len(b))):
            pairs.append((a[n] if n < len(a) else None, b[n] if n < len(b) else None))
        return pairs
    lookup_b = {layer.name: layer for layer in b}
    matched: list[tuple[LayerRef | None, LayerRef | None]] = [(x, lookup_b.get(x.name)) for x in a]
    names_matched = {layer.name for layer in a}
    matched += [(None, layer) for layer in b if layer.name not in names_matched]
    return matched


def compare(a: ImageSource, b: ImageSource, platform: str | None = None,
            progress: Callable[[str], None] = lambda message: None) -> DiffResult:
    """Every difference between A and B (optionally one PLATFORM), with the digests each one changes."""
    return _Comparer(a, b, progress).run(platform)
