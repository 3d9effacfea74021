"""in-toto statements about images: SLSA v1 provenance of a build, and reproduction attestations.

Both are functions that return the statement's bytes (canonical JSON), so a signer can wrap the
exact bytes in a DSSE envelope. Neither holds a wall-clock time: the same build inputs on the same
builder give the same bytes.

- provenance_statement: in-toto Statement v1 (https://in-toto.io/Statement/v1) with the SLSA
  Provenance v1 predicate (https://slsa.dev/provenance/v1). buildType BUILD_TYPE; external
  parameters: the recipe file's sha256, the platforms and tag; internal parameters: the epoch and
  each stage's strategy (as the image config's history records it); resolved dependencies: the
  lock file and every locked .deb of the platform (purl and sha256); runDetails.builder.id: the
  builder (XARCH_BUILDER_ID, else BUILDER_LOCAL) and xarch's version.
- reproduction_statement: predicate REPRODUCTION: "rebuilt from recipe X and lock Y on builder Z;
  every digest matched", with the digests that matched. Its subject is the image index.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xarch import __version__
from xarch.oci.digest import canonical_json, hex_of
from xarch.oci.digest import file_sha256 as digest_of_file

STATEMENT = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
# xarch's own type URIs (documented in docs/supply-chain.md).
BUILD_TYPE = "https://xarch.invalid/build-types/recipe/v1"
REPRODUCTION = "https://xarch.invalid/attestations/reproduction/v1"
BUILDER_LOCAL = "https://xarch.invalid/builders/local"


def builder_id() -> str:
    """Who built: $XARCH_BUILDER_ID (e.g. a CI job's URL), else BUILDER_LOCAL."""
    return os.environ.get("XARCH_BUILDER_ID", "").strip() or BUILDER_LOCAL


def sha256_or_none(path: Path) -> str | None:
    """The hex sha256 of PATH's bytes, or None when it does not exist."""
    try:
        return digest_of_file(path)
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class Dependency:
    """A locked .deb: its purl, sha256 (hex), and the lock sets that use it."""

    purl: str
    sha256: str
    filename: str
    sets: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildFacts:
    """What a build was made from (the same for every platform of one build)."""

    recipe_file: str  # its name, e.g. xarch.yaml
    recipe_sha256: str  # hex
    lock_sha256: str | None  # hex; None without packages
    name: str
    tag: str
    platforms: tuple[str, ...]  # the recipe's platform names that were built
    epoch: int
    builder: str = field(default_factory=builder_id)


def strategies_of(config_bytes: bytes) -> dict[str, str]:
    """stage → strategy, from an image config's history (xarch.build.stages.strategy_record)."""
    from xarch.build.stages import parse_strategy_records

    config = json.loads(config_bytes)
    history = config.get("history") if isinstance(config, dict) else None
    return parse_strategy_records(history if isinstance(history, list) else [])


def _statement(subjects: Sequence[tuple[str, str]], predicate_type: str, predicate: dict[str, Any]) -> bytes:
    return canonical_json({
        "_type": STATEMENT,
        "subject": [{"name": name, "digest": {"sha256": hex_of(digest)}} for name, digest in subjects],
        "predicateType": predicate_type,
        "predicate": predicate,
    })


def provenance_statement(facts: BuildFacts, platform: str, manifest_digest: str, config_bytes: bytes,
                         dependencies: Sequence[Dependency]) -> bytes:
    """The SLSA v1 provenance of PLATFORM's image (MANIFEST_DIGEST, its config CONFIG_BYTES) as bytes."""
    resolved: list[dict[str, Any]] = []
    if facts.lock_sha256:
        resolved.append({"uri": "xarch.lock", "name": "xarch.lock", "digest": {"sha256": facts.lock_sha256}})
    resolved += [{"uri": dep.purl, "digest": {"sha256": dep.sha256},
                  "annotations": {"filename": dep.filename, "sets": list(dep.sets)}}
                 for dep in sorted(dependencies, key=lambda d: d.purl)]
    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "recipe": {"uri": facts.recipe_file, "digest": {"sha256": facts.recipe_sha256}},
                "platforms": list(facts.platforms),
                "tag": facts.tag,
            },
            "internalParameters": {"epoch": facts.epoch, "platform": platform,
                                   "strategies": dict(sorted(strategies_of(config_bytes).items()))},
            "resolvedDependencies": resolved,
        },
        "runDetails": {
            "builder": {"id": facts.builder, "version": {"xarch": __version__}},
            # No startedOn/finishedOn: a wall-clock time would make every build's provenance differ.
            "metadata": {"invocationId": f"{facts.recipe_sha256[:16]}-{(facts.lock_sha256 or '')[:16]}"
                                         f"-{platform}"},
        },
    }
    return _statement([(f"{facts.name}:{facts.tag} {platform}", manifest_digest)], SLSA_PROVENANCE, predicate)


def reproduction_statement(reference: str, index_digest: str, facts: BuildFacts,
                           matched: Mapping[str, str]) -> bytes:
    """The reproduction attestation of the index INDEX_DIGEST published at REFERENCE: rebuilt from
    FACTS' recipe and lock on FACTS' builder, and MATCHED (platform → manifest digest, "index" → the
    index digest) are the digests that were compared and found equal."""
    predicate = {
        "verdict": "reproduced",
        "recipe": {"uri": facts.recipe_file, "digest": {"sha256": facts.recipe_sha256}},
        "lock": {"uri": "xarch.lock", "digest": {"sha256": facts.lock_sha256}} if facts.lock_sha256 else None,
        "epoch": facts.epoch,
        "platforms": list(facts.platforms),
        "builder": {"id": facts.builder, "version": {"xarch": __version__}},
        "matched": dict(sorted(matched.items())),
    }
    return _statement([(reference, index_digest)], REPRODUCTION, predicate)
