"""Which entry of a layout's index.json is the image: one rule (xarch.oci.layout.image_entry) for
inspect, diff, load, push and verify, checked here on hand-made index.json documents and on a
layout whose first entry is an attachment."""

from __future__ import annotations

from typing import Any

import pytest

from xarch.oci.digest import OCI_INDEX, OCI_MANIFEST, REF_NAME
from xarch.oci.layout import LayoutError, image_entry

SBOM = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": 10,
        "artifactType": "application/spdx+json"}
INDEX = {"mediaType": OCI_INDEX, "digest": "sha256:" + "b" * 64, "size": 20, "annotations": {REF_NAME: "1.0"}}
OTHER = {"mediaType": OCI_INDEX, "digest": "sha256:" + "c" * 64, "size": 30, "annotations": {REF_NAME: "2.0"}}


def top(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(entries)}


def test_an_attachment_listed_first_is_not_the_image() -> None:
    assert image_entry(top(SBOM, INDEX), "x") is INDEX


def test_a_tag_picks_its_entry_and_an_unknown_tag_the_image() -> None:
    assert image_entry(top(INDEX, OTHER), "x", "2.0") is OTHER
    assert image_entry(top(SBOM, INDEX, OTHER), "x", "9.9") is INDEX


@pytest.mark.parametrize("document", [top(), top(SBOM), {"manifests": "no"}, {"manifests": [1]}],
                         ids=["empty", "only-attachments", "not-a-list", "not-descriptors"])
def test_no_image_is_one_error_naming_the_file(document: dict[str, Any]) -> None:
    with pytest.raises(LayoutError, match=r"^layout/index.json: "):
        image_entry(document, "layout/index.json")
