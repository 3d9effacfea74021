"""SBOMs and provenance of a build as OCI attachments (xarch.oci.artifact) of its platform manifests.

`build_attachments` returns them for `Artifact.attachments`: the layout writer lists them in
index.json beside the image index, whose bytes do not change; a push makes them referrers
(xarch.registry.referrers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from xarch import platforms as platform_data
from xarch.oci.artifact import (
    CREATED,
    CYCLONEDX_JSON,
    IN_TOTO,
    PREDICATE_ANNOTATION,
    SPDX_JSON,
    Attachment,
    attachment,
)
from xarch.oci.digest import OCI_MANIFEST, Descriptor, platform_name
from xarch.oci.image import Image, rfc3339
from xarch.sbom.contents import image_facts
from xarch.sbom.documents import Subject, purl, render
from xarch.sbom.provenance import (
    SLSA_PROVENANCE,
    BuildFacts,
    Dependency,
    provenance_statement,
    sha256_or_none,
)

if TYPE_CHECKING:
    from xarch.oci.layout import Artifact
    from xarch.recipe import LoadedRecipe
    from xarch.sources.debian.lock import Lock

MEDIA_TYPES = {"spdx": SPDX_JSON, "cyclonedx": CYCLONEDX_JSON}
FORMAT_OF = {media_type: fmt for fmt, media_type in MEDIA_TYPES.items()}


def build_facts(loaded: LoadedRecipe, platforms: Sequence[str], epoch: int) -> BuildFacts:
    """What this build is made from: the recipe file's and the lock file's sha256 and more."""
    from xarch.sources.debian.locking import lock_path

    recipe_sha = sha256_or_none(loaded.path) or ""
    lock_sha = sha256_or_none(lock_path(loaded.path))
    return BuildFacts(loaded.path.name, recipe_sha, lock_sha, loaded.recipe.name, loaded.recipe.tag,
                      tuple(platforms), epoch)


def _platform_of(image: Image) -> platform_data.Platform:
    return platform_data.get(platform_name(image.platform))


def _image_entries(loaded: LoadedRecipe, lock: Lock | None,
                   platform: str) -> list[tuple[str, str, str, str, str, str]]:
    if lock is None or loaded.recipe.packages is None:
        return []
    return [(p.name, p.version, p.architecture, p.sha256, p.filename, p.suite)
            for p in lock.entries(platform)]


def _dependencies(lock: Lock | None, platform: str) -> list[Dependency]:
    """Every locked .deb a build of PLATFORM may use: the image's, each stage's, each cross root's."""
    if lock is None:
        return []
    from xarch.sbom.contents import PackageFact

    found: dict[str, tuple[Dependency, set[str]]] = {}
    for set_name, per_platform in lock.packages.items():
        for key, entries in per_platform.items():
            if key != platform and not key.endswith(f"->{platform}"):
                continue
            for p in entries:
                fact = PackageFact(p.name, p.version, p.architecture, p.sha256, p.filename, p.suite, p.name,
                                   p.version)
                ref = purl(fact)
                dep, sets = found.setdefault(ref, (Dependency(ref, p.sha256, p.filename), set()))
                sets.add(set_name if key == platform else f"{set_name} ({key})")
    return [Dependency(dep.purl, dep.sha256, dep.filename, tuple(sorted(sets)))
            for dep, sets in found.values()]


def manifest_subject(image: Image) -> Descriptor:
    """The descriptor an attachment's `subject` names: the platform manifest (no platform field)."""
    return Descriptor.of(OCI_MANIFEST, image.manifest_bytes)


def build_attachments(images: Sequence[Image], loaded: LoadedRecipe, lock: Lock | None, epoch: int,
                      sbom_formats: Sequence[str] = (), provenance: bool = False,
                      facts: BuildFacts | None = None) -> tuple[Attachment, ...]:
    """For each image (in the given order): one SBOM per format of SBOM_FORMATS ("spdx", "cyclonedx"),
    then its provenance when PROVENANCE. Annotated with the epoch as `created`."""
    names = [_platform_of(image).name for image in images]
    facts = facts or build_facts(loaded, names, epoch)
    created = {CREATED: rfc3339(epoch)}
    result: list[Attachment] = []
    for image, name in zip(images, names, strict=True):
        subject = manifest_subject(image)
        if sbom_formats:
            contents = image_facts(image, _image_entries(loaded, lock, name))
            about = Subject(loaded.recipe.name, loaded.recipe.tag, dict(image.platform), subject.digest,
                            epoch)
            for fmt in sbom_formats:
                result.append(attachment(MEDIA_TYPES[fmt], render(contents, about, fmt), subject,
                                         annotations=created))
        if provenance:
            statement = provenance_statement(facts, name, subject.digest, image.config_bytes,
                                             _dependencies(lock, name))
            result.append(attachment(IN_TOTO, statement, subject,
                                     annotations={**created, PREDICATE_ANNOTATION: SLSA_PROVENANCE}))
    return tuple(result)


def attach_to(artifact: Artifact, loaded: LoadedRecipe, lock: Lock | None, epoch: int,
              sbom_formats: Sequence[str], provenance: bool) -> Artifact:
    """ARTIFACT with its SBOMs and provenance attached (build_attachments); the index is unchanged."""
    attached = build_attachments(artifact.images, loaded, lock, epoch, sbom_formats, provenance)
    return replace(artifact, attachments=attached)


def parse_formats(text: str) -> tuple[str, ...]:
    """`spdx,cyclonedx` → ("spdx", "cyclonedx"); InputError naming --sbom for anything else."""
    from xarch.errors import InputError

    chosen = []
    for item in (part.strip() for part in text.split(",")):
        if item not in MEDIA_TYPES:
            raise InputError(f"--sbom {text!r}: {item!r} is not a format (choose spdx, cyclonedx or both)")
        if item not in chosen:
            chosen.append(item)
    return tuple(chosen)

