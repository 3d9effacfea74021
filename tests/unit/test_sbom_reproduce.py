"""The reproduction attestation `xarch verify --against REF --attest` pushes (xarch/sbom/reproduce.py):
only rows the rebuild matched byte for byte are claimed, and its bytes depend on the recipe,
epoch and digests, never on the time of day."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from xarch.oci.artifact import IN_TOTO
from xarch.oci.digest import Descriptor
from xarch.recipe import load
from xarch.sbom.reproduce import matched_digests, reproduction_attachment
from xarch.verify.published import DIFFERS, NOT_REBUILT, SAME, AgainstReport, AgainstRow

AMD, ARM, INDEX = "sha256:" + "1" * 64, "sha256:" + "2" * 64, "sha256:" + "3" * 64


def report() -> AgainstReport:
    return AgainstReport("r.example/app:v1", "registry", [
        AgainstRow("linux/amd64", AMD, AMD, SAME),
        AgainstRow("linux/arm64", None, ARM, NOT_REBUILT),
        AgainstRow("linux/riscv64", "sha256:" + "9" * 64, "sha256:" + "8" * 64, DIFFERS),
        AgainstRow("index", INDEX, INDEX, SAME),
    ])


def test_only_rows_rebuilt_to_the_same_bytes_are_claimed() -> None:
    assert matched_digests(report()) == {"linux/amd64": AMD, "index": INDEX}


def test_the_attestation_names_the_index_the_recipe_and_the_matches(tmp_path: Path) -> None:
    recipe = tmp_path / "xarch.yaml"
    recipe.write_text("name: app\nplatforms: [amd64]\n")
    subject = Descriptor("application/vnd.oci.image.index.v1+json", INDEX, 1234)
    made, again = (reproduction_attachment(load(recipe), ["amd64"], 1_700_000_000, "r.example/app:v1",
                                           subject, report()) for _ in range(2))
    assert made.manifest_bytes == again.manifest_bytes  # no clock in it
    assert made.artifact_type == IN_TOTO and made.subject == subject
    manifest = json.loads(made.manifest_bytes)
    statement = json.loads(made.blobs[manifest["layers"][0]["digest"]])  # a plain in-toto statement
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [{"name": "r.example/app:v1", "digest": {"sha256": "3" * 64}}]
    predicate = statement["predicate"]
    assert predicate["matched"] == {"index": INDEX, "linux/amd64": AMD}
    assert predicate["recipe"]["digest"]["sha256"] == hashlib.sha256(recipe.read_bytes()).hexdigest()
    assert predicate["lock"] is None and predicate["epoch"] == 1_700_000_000
