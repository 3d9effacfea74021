"""Push without rework (issue 14): `build --push` sends the build's blobs from the store without
writing a layout, and a re-push asks the registry before it reads or sends anything.

Against the real Debian docker-registry on 127.0.0.1 (tests/support/registry.py); what was sent
is read from the registry's own access log, not from xarch's counters alone.
"""
# Fixtures are imported from tests/support and then named as arguments:

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from tests.integration.test_e2e_publish import make_recipe
from tests.support.e2e import index_digest
from tests.support.registry import Registry, make_layout, mark, requests_since
from xarch.oci.layout import LayoutError
from xarch.registry.push import push_layout


def served_index(registry: Registry, repository: str, tag: str) -> bytes:
    response = requests.get(f"http://{registry.host}/v2/{repository}/manifests/{tag}", timeout=10,
                            headers={"Accept": "application/vnd.oci.image.index.v1+json"})
    response.raise_for_status()
    return response.content


def test_build_push_writes_no_layout_and_an_unchanged_repush_sends_nothing(
        registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from xarch.cli.group import cli

    monkeypatch.setenv("XARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    # Every layout written, whoever writes it (the -o output is one), and every temporary folder.
    written: list[Path] = []
    scratch: list[str] = []
    from xarch.oci import layout as layout_module

    real_write = layout_module.write_layout

    def recording_write(artifact: Any, target: Path) -> None:
        written.append(Path(target))
        real_write(artifact, target)

    for module in list(sys.modules.values()):
        if module is not None and getattr(module, "write_layout", None) is real_write:
            monkeypatch.setattr(module, "write_layout", recording_write)
    real_tempdir = tempfile.TemporaryDirectory

    def recording_tempdir(*args: Any, **kwargs: Any) -> Any:
        scratch.append(str(kwargs.get("prefix")))
        return real_tempdir(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryDirectory", recording_tempdir)

    recipe = make_recipe(tmp_path / "src", "pushed from the store\n")
    out = tmp_path / "out"
    ref = f"{registry.host}/store/app:v1"
    args = ["build", "-f", str(recipe), "-q", "-o", f"oci:{out}", "--push", ref, "--insecure"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, (first.output, first.exception)
    assert written == [out]  # the output only: the push read the store, not a layout
    assert not [prefix for prefix in scratch if "push" in prefix]
    index = json.loads((out / "index.json").read_text())["manifests"][0]
    assert served_index(registry, "store/app", "v1") == \
        (out / "blobs" / "sha256" / index["digest"].split(":")[1]).read_bytes()
    sent = requests_since(registry, 0)
    assert [r for r in sent if r[0] == "PUT" and "/blobs/uploads/" in r[1]]  # blobs were uploaded

    before = mark(registry)
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, (again.output, again.exception)
    asked = requests_since(registry, before)
    # The index HEAD by digest, the tag HEAD: nothing written, no blob asked about one by one.
    assert {method for method, _, _ in asked} <= {"GET", "HEAD"}, asked
    assert not [path for _, path, _ in asked if "/blobs/" in path], asked
    assert ("HEAD", f"/v2/store/app/manifests/{index_digest(out)}", 200) in asked


def _delete(registry: Registry, path: str) -> None:
    response = requests.delete(f"http://{registry.host}{path}", timeout=10)
    assert response.status_code == 202, (path, response.status_code, response.text)


def test_repush_after_one_blob_is_deleted_uploads_only_that_blob(
        registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"])
    push_layout(layout.path, f"{registry.host}/demo/app:v1")
    amd64 = json.loads(layout.manifests["amd64"])
    arm64_digest = _index_digest(layout.manifests["arm64"])
    amd64_digest = _index_digest(layout.manifests["amd64"])
    victim = amd64["layers"][-1]  # amd64's own layer (the first is shared with arm64)
    # The registry loses the blob and the manifests that name it (a clean-up by its operator).
    _delete(registry, f"/v2/demo/app/blobs/{victim['digest']}")
    _delete(registry, f"/v2/demo/app/manifests/{amd64_digest}")
    _delete(registry, f"/v2/demo/app/manifests/{_index_digest(layout.index_bytes)}")

    hashed: list[str] = []
    import xarch.registry.push_source as push_source

    real_verify = push_source.verify_file

    def counting(root: Path, descriptor: dict[str, Any], where: str) -> None:
        hashed.append(descriptor["digest"])
        real_verify(root, descriptor, where)

    monkeypatch.setattr(push_source, "verify_file", counting)
    before = mark(registry)
    again = push_layout(layout.path, f"{registry.host}/demo/app:v1")
    assert (again.stats.blobs_sent, again.stats.bytes_sent) == (1, victim["size"])
    assert hashed == [victim["digest"]]  # the one blob sent was hashed; the others were not read
    asked = requests_since(registry, before)
    uploads = [r for r in asked if r[0] == "PUT" and "/blobs/uploads/" in r[1]]
    assert len(uploads) == 1 and victim["digest"] in uploads[0][1]
    puts = [path for method, path, _ in asked if method == "PUT" and "/manifests/" in path]
    assert f"/v2/demo/app/manifests/{arm64_digest}" not in puts  # the arm64 image was there: skipped whole
    assert f"/v2/demo/app/manifests/{amd64_digest}" in puts
    # arm64's blobs were not asked about one by one either.
    arm64 = json.loads(layout.manifests["arm64"])
    assert not [path for _, path, _ in asked if arm64["layers"][-1]["digest"] in path]
    assert served_index(registry, "demo/app", "v1") == layout.index_bytes


def _index_digest(data: bytes) -> str:
    """The digest of a manifest's or index's bytes."""
    from xarch.registry.mediatypes import sha256_digest

    return sha256_digest(data)


def test_a_corrupt_layout_blob_is_refused_when_it_must_be_sent(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"])
    push_layout(layout.path, f"{registry.host}/demo/app:v1")
    amd64 = json.loads(layout.manifests["amd64"])
    victim = amd64["layers"][-1]
    blob = layout.path / "blobs" / "sha256" / victim["digest"].split(":")[1]
    blob.write_bytes(blob.read_bytes()[:-1] + bytes([blob.read_bytes()[-1] ^ 1]))  # same size, other bytes

    # The registry has every blob under an index it holds: nothing is sent, so nothing is read.
    before = mark(registry)
    unchanged = push_layout(layout.path, f"{registry.host}/demo/app:v1")
    assert unchanged.stats.bytes_sent == 0
    assert {m for m, _, _ in requests_since(registry, before)} <= {"HEAD", "GET"}

    # Once the registry lacks that blob it must be sent, so it is hashed first: refused, nothing written.
    _delete(registry, f"/v2/demo/app/blobs/{victim['digest']}")
    _delete(registry, f"/v2/demo/app/manifests/{_index_digest(layout.index_bytes)}")
    amd64_digest = _index_digest(layout.manifests["amd64"])
    _delete(registry, f"/v2/demo/app/manifests/{amd64_digest}")
    before = mark(registry)
    with pytest.raises(LayoutError) as caught:
        push_layout(layout.path, f"{registry.host}/demo/app:v2")
    assert victim["digest"] in str(caught.value) and "\n" not in str(caught.value)
    assert {m for m, _, _ in requests_since(registry, before)} <= {"HEAD", "GET"}

    # A layout whose blob has another size than its descriptor says is refused before any request.
    blob.write_bytes(blob.read_bytes() + b"x")
    before = mark(registry)
    with pytest.raises(LayoutError, match="more than the descriptor.s"):
        push_layout(layout.path, f"{registry.host}/demo/app:v3")
    assert requests_since(registry, before) == []


def test_push_command_does_not_load_the_recipe_model() -> None:
    """`xarch push` starts without xarch.recipe (pydantic models of the recipe: ~0.1 s of start-up)."""
    import subprocess
    import sys

    from tests.support.e2e import REPO
    from xarch.cli.options import DEFAULT_FILE
    from xarch.recipe import DEFAULT_FILE as RECIPE_DEFAULT

    assert DEFAULT_FILE == RECIPE_DEFAULT
    probe = ("import sys, xarch.cli.main, xarch.cli.push; "
             "print(sorted(m for m in sys.modules if m in ('xarch.recipe', 'xarch.platforms')))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"


def test_an_unchanged_repush_with_attachments_writes_nothing(registry: Registry, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from xarch.cli.group import cli
    from xarch.registry.referrers import referrers_tag

    monkeypatch.setenv("XARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    recipe = make_recipe(tmp_path / "src", "with an SBOM\n")
    out = tmp_path / "out"
    args = ["build", "-f", str(recipe), "-q", "-o", f"oci:{out}", "--sbom", "spdx",
            "--push", f"{registry.host}/store/sbom:v1"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, (first.output, first.exception)
    top = json.loads((out / "index.json").read_text())["manifests"]
    attached = [entry for entry in top if entry.get("artifactType")]
    assert attached  # one SBOM per platform
    blobs = out / "blobs" / "sha256"
    subjects = {json.loads((blobs / a["digest"].split(":")[1]).read_bytes())["subject"]["digest"]
                for a in attached}
    for subject in subjects:  # docker-registry 2.8 lists referrers under the fallback tag
        tag = json.loads(served_index(registry, "store/sbom", referrers_tag(subject)))
        assert {d["digest"] for d in tag["manifests"]} & {a["digest"] for a in attached}

    before = mark(registry)
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, (again.output, again.exception)
    asked = requests_since(registry, before)
    assert {method for method, _, _ in asked} <= {"GET", "HEAD"}, asked
