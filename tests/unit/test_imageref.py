"""One parser for every image argument (issue 11, kind 5): xarch/registry/imageref.py, and the commands that
use it saying which kind they took. A local file or folder is never taken for a registry name."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.registry import make_layout
from xarch.registry.errors import InvalidReference
from xarch.registry.imageref import (
    DOCKER_ARCHIVE,
    LOCAL_KINDS,
    OCI,
    OCI_ARCHIVE,
    REGISTRY,
    ImageRefError,
    parse_image_ref,
)

REPO = Path(__file__).resolve().parents[2]


def oci_archive(layout: Path, target: Path) -> Path:
    with tarfile.open(target, "w") as archive:
        for path in sorted(layout.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(layout)), recursive=False)
    return target


def docker_archive(target: Path) -> Path:
    with tarfile.open(target, "w") as archive:
        data = json.dumps([{"Config": "c.json", "RepoTags": ["x:y"], "Layers": []}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return target


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"]).path
    return {"layout": layout, "archive": oci_archive(layout, tmp_path / "out.tar"),
            "docker": docker_archive(tmp_path / "d.tar")}


def test_local_kinds_are_recognised_by_content(images: dict[str, Path]) -> None:
    assert parse_image_ref(str(images["layout"])).kind == OCI
    assert parse_image_ref(str(images["archive"])).kind == OCI_ARCHIVE
    assert parse_image_ref(str(images["docker"])).kind == DOCKER_ARCHIVE
    for kind, key in ((OCI, "layout"), (OCI_ARCHIVE, "archive"), (DOCKER_ARCHIVE, "docker")):
        ref = parse_image_ref(f"{kind}:{images[key]}")
        assert (ref.kind, ref.path) == (kind, images[key])
    assert parse_image_ref(f"oci-archive:{images['archive']}").label == f"oci-archive {images['archive']}"


def test_an_existing_path_wins_over_a_registry_name(tmp_path: Path, images: dict[str, Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    looks_remote = tmp_path / "127.0.0.1:5000" / "app:v1"
    looks_remote.parent.mkdir()
    images["archive"].rename(looks_remote)
    monkeypatch.chdir(tmp_path)
    assert parse_image_ref("127.0.0.1:5000/app:v1").kind == OCI_ARCHIVE
    assert parse_image_ref("docker://127.0.0.1:5000/app:v1").kind == REGISTRY  # unless asked for


@pytest.mark.parametrize("text", ["out.tar", "missing-folder/", "./x/y", "/nowhere/app:v1", "alpine"])
def test_a_missing_local_looking_name_is_never_sent_to_a_registry(text: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ImageRefError, match="no such file or folder"):
        parse_image_ref(text)


def test_registry_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for text, reference in (("localhost:5000/a/b:1", "localhost:5000/a/b:1"), ("user/app:2", "user/app:2"),
                            ("docker://alpine:3", "alpine:3"), ("registry:r.example/x", "r.example/x")):
        ref = parse_image_ref(text)
        assert (ref.kind, ref.reference) == (REGISTRY, reference)
    with pytest.raises(InvalidReference):
        parse_image_ref("docker://Not/Valid:::")


def test_wrong_kinds_and_unreadable_files_are_one_line(images: dict[str, Path], tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a tar")
    cases = [
        (lambda: parse_image_ref(str(images["docker"]), (OCI, OCI_ARCHIVE), "push"), "is a docker-archive"),
        (lambda: parse_image_ref("docker://a/b", LOCAL_KINDS, "inspect"), "is a registry image"),
        (lambda: parse_image_ref(f"oci:{images['archive']}"), "not a folder"),
        (lambda: parse_image_ref(f"oci-archive:{images['layout']}"), "not a file"),
        (lambda: parse_image_ref(str(notes)), "not a tar archive"),
        (lambda: parse_image_ref(f"oci:{tmp_path / 'nope'}"), "no such file or folder"),
        (lambda: parse_image_ref("dist/gone", LOCAL_KINDS, "inspect"), "inspect dist/gone: no such file"),
    ]
    for call, expected in cases:
        with pytest.raises(ImageRefError) as caught:
            call()
        assert expected in str(caught.value) and "\n" not in str(caught.value)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # No network at all: a proxy that does not exist, so any registry call would fail loudly.
    env = {**os.environ, "PYTHONPATH": str(REPO), "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9"}
    return subprocess.run([sys.executable, "-m", "xarch.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_commands_say_which_kind_they_took(images: dict[str, Path], tmp_path: Path) -> None:
    inspected = run_cli("inspect", "--json", "out.tar", cwd=tmp_path)
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["kind"] == OCI_ARCHIVE
    assert "(oci)" in run_cli("inspect", "layout", cwd=tmp_path).stdout.splitlines()[0]
    diffed = run_cli("diff", "out.tar", "oci:layout", cwd=tmp_path)
    assert diffed.returncode == 0, diffed.stderr
    assert "A: oci-archive out.tar; B: oci oci:layout" in diffed.stderr
    refused = run_cli("push", "docker://127.0.0.1:5000/a:b", "127.0.0.1:5000/c:d", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "xarch: error: push docker://127.0.0.1:5000/a:b: is a registry image; "
        "this command takes an OCI layout folder or an oci-archive")
    # inspect takes a registry image too (its signatures, docs/signing.md): it went to the registry.
    asked = run_cli("inspect", "docker://127.0.0.1:9/a:b", cwd=tmp_path)
    assert (asked.returncode, asked.stderr) == (4, "xarch: error: cannot connect to registry 127.0.0.1:9\n")
