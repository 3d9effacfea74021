"""The buildx side's helpers: base images, build contexts, buildx commands, image facts.

Also the facts of an OCI layout xarch wrote (digests, compressed and uncompressed layer bytes).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Any

from benchmarks.measuring import REPO, WORK, fresh, log, run


def ensure_base_images() -> None:
    missing = [
        a
        for a in ("amd64", "arm64")
        if subprocess.run(
            ["docker", "image", "inspect", f"xarch-bench/debian:bookworm-{a}"], capture_output=True
        ).returncode
    ]
    if missing:
        log(f"building the buildx base image for {', '.join(missing)} (scripts/bench-base-image)")
        subprocess.run(  # this interpreter (it has xarch's dependencies), not the launcher's python3
            [sys.executable, "-m", "benchmarks.base_image", "--arch", ",".join(missing)], check=True, cwd=REPO
        )


def buildx_prune() -> None:
    subprocess.run(["docker", "buildx", "prune", "-af"], check=True, capture_output=True)
    subprocess.run(["docker", "builder", "prune", "-af"], check=True, capture_output=True)


def docker_rmi(ref: str) -> None:
    subprocess.run(["docker", "image", "rm", "-f", ref], capture_output=True)


def layout_facts(layout: Path) -> dict[str, Any]:
    """Per platform: manifest digest, compressed and uncompressed layer bytes, layer count."""

    def blob(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()

    top = json.loads((layout / "index.json").read_text())
    index_digest = top["manifests"][0]["digest"]
    index = json.loads(blob(index_digest))
    platforms = {}
    for entry in index["manifests"]:
        manifest = json.loads(blob(entry["digest"]))
        uncompressed = sum(len(zlib.decompress(blob(layer["digest"]), 47)) for layer in manifest["layers"])
        platforms[entry["platform"]["architecture"]] = {
            "digest": entry["digest"],
            "compressed": sum(layer["size"] for layer in manifest["layers"]),
            "uncompressed": uncompressed,
            "layers": len(manifest["layers"]),
        }
    return {"index": index_digest, "platforms": platforms}


def docker_image_facts(ref: str, sizes: bool) -> dict[str, object]:
    """Layer diff_ids and image ID from the daemon; with SIZES, sizes from `docker save` (each
    layer tar gzipped at level 6, what a push would store)."""
    inspected = json.loads(run(["docker", "image", "inspect", ref]))[0]
    compressed = uncompressed = 0
    if sizes:
        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            archive = Path(tmp) / "image.tar"
            subprocess.run(["docker", "save", "-o", str(archive), ref], check=True)
            with tarfile.open(archive) as saved:
                for member in saved:
                    if member.isfile() and member.name.endswith("layer.tar"):
                        data = saved.extractfile(member).read()  # type: ignore[union-attr]
                        uncompressed += len(data)
                        compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
                        compressed += len(compressor.compress(data)) + len(compressor.flush())
    return {
        "id": inspected["Id"],
        "diff_ids": inspected["RootFS"]["Layers"],
        "layers": len(inspected["RootFS"]["Layers"]),
        "compressed": compressed,
        "uncompressed": uncompressed,
        "architecture": inspected["Architecture"],
    }


def context_dir(name: str, dockerfile: str, files: dict[str, Path] | None = None) -> Path:
    directory = fresh(WORK / "contexts" / name)
    (directory / "Dockerfile").write_text(dockerfile)
    for target, source in (files or {}).items():
        shutil.copy(source, directory / target)
    return directory


def buildx_cmd(context: Path, arch: str, tag: str, *extra: str) -> list[str]:
    # TARGETARCH given explicitly: the BuildKit inside Debian 12's dockerd leaves it empty in the
    # global scope (FROM …:bookworm-), and would then try to pull from Docker Hub.
    return [
        "docker",
        "buildx",
        "build",
        "--progress=plain",
        "--platform",
        f"linux/{arch}",
        "--build-arg",
        f"TARGETARCH={arch}",
        "--load",
        "-t",
        tag,
        *extra,
        str(context),
    ]
