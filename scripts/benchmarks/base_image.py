"""Build the Debian 12 base image the buildx side of scripts/bench starts FROM.

Usage: scripts/bench-base-image [--arch amd64,arm64] [--workdir DIR] [--force]

For each architecture: `mmdebstrap --variant=minbase bookworm` (arm64 through QEMU
binfmt_misc) into a tarball, made into a one-layer OCI image with xarch's own OCI core
(so the config says the right architecture: BuildKit would try to pull a FROM image whose
config names another one), written as an OCI layout and loaded with
`skopeo copy oci:DIR:TAG docker-daemon:xarch-bench/debian:bookworm-ARCH`.
No image is pulled from a registry. An image already in the daemon is kept unless --force.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Literal

from xarch import platforms
from xarch.oci.compress import DEFAULT_LEVEL, compressor_id
from xarch.oci.digest import OCI_MANIFEST, REF_NAME, Descriptor, canonical_json, hex_of
from xarch.oci.image import RuntimeConfig, build_image
from xarch.oci.layer import build_layer
from xarch.oci.layout import OCI_LAYOUT_FILE
from xarch.oci.tree import Entry, Tree

EPOCH = 1700000000
MIRROR = "http://deb.debian.org/debian"
IMAGE = "xarch-bench/debian:bookworm-{arch}"


def log(message: str) -> None:
    print(f"bench-base-image: {message}", flush=True)


def image_exists(ref: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode == 0


def debootstrap(arch: str, tarball: Path) -> None:
    if arch != platforms.host().debian_arch:
        # arch-test says whether binfmt_misc + QEMU can run this architecture's binaries.
        if subprocess.run(["arch-test", arch], capture_output=True).returncode != 0:
            sys.exit(
                f"bench-base-image: error: cannot run {arch} binaries (register QEMU: "
                "xarch platforms --setup)"
            )
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(EPOCH))
    # The merged-usr hook merges /usr the way debian:bookworm is built, instead of installing
    # usrmerge, which would pull full perl (+60 MB) into the base and inflate the buildx side.
    subprocess.run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            f"--arch={arch}",
            "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
            "bookworm",
            str(tarball),
            MIRROR,
        ],
        check=True,
        env=env,
    )


def tree_from_tarball(tarball: Path) -> Tree:
    """The rootfs as an image tree; device nodes and fifos are left out (the runtime makes /dev)."""
    tree = Tree()
    with tarfile.open(tarball) as archive:
        for member in archive:
            # Whole-second mtimes: mmdebstrap clamps every one to SOURCE_DATE_EPOCH.
            mode, uid, gid, mtime = member.mode & 0o7777, member.uid, member.gid, int(member.mtime)
            if member.isdir():
                tree.add(Entry(member.name, "dir", mode, uid=uid, gid=gid, mtime=mtime))
            elif member.isreg():
                handle = archive.extractfile(member)
                assert handle is not None
                tree.add(Entry(member.name, "file", mode, uid=uid, gid=gid, mtime=mtime, data=handle.read()))
            elif member.issym() or member.islnk():
                kind: Literal["symlink", "hardlink"] = "symlink" if member.issym() else "hardlink"
                link = member.linkname
                tree.add(Entry(member.name, kind, mode, uid=uid, gid=gid, mtime=mtime, linkname=link))
    return tree


def write_single_image_layout(arch: str, tree: Tree, target: Path) -> str:
    """An OCI layout whose index.json names the image manifest directly (what skopeo's oci: reads)."""
    platform = platforms.get(arch)
    layer = build_layer("rootfs", list(tree), EPOCH, DEFAULT_LEVEL)
    runtime = RuntimeConfig(
        cmd=["bash"], env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    )
    image = build_image(platform.oci_platform(), [layer], runtime, EPOCH, compressor_id(DEFAULT_LEVEL))
    tag = f"bookworm-{arch}"
    manifest = Descriptor.of(
        OCI_MANIFEST, image.manifest_bytes, platform=image.platform, annotations={REF_NAME: tag}
    )
    blobs = target / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for digest, data in image.blobs().items():
        (blobs / hex_of(digest)).write_bytes(data)
    (target / "oci-layout").write_bytes(OCI_LAYOUT_FILE)
    top = {"schemaVersion": 2, "manifests": [manifest.to_json()]}
    (target / "index.json").write_bytes(canonical_json(top))
    return tag


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="scripts/bench-base-image",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--arch", default="amd64,arm64")
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/xarch-bench/base"))
    parser.add_argument("--force", action="store_true", help="rebuild even if the image is loaded")
    args = parser.parse_args()
    for arch in args.arch.split(","):
        ref = IMAGE.format(arch=arch)
        if image_exists(ref) and not args.force:
            log(f"{ref} already loaded")
            continue
        work = args.workdir / arch
        subprocess.run(["rm", "-rf", str(work)], check=True)
        work.mkdir(parents=True)
        started = time.monotonic()
        log(f"mmdebstrap --variant=minbase --arch={arch} bookworm")
        tarball = work / "rootfs.tar"
        debootstrap(arch, tarball)
        layout = work / "layout"
        tag = write_single_image_layout(arch, tree_from_tarball(tarball), layout)
        subprocess.run(
            ["skopeo", "copy", "--quiet", f"oci:{layout}:{tag}", f"docker-daemon:{ref}"], check=True
        )
        inspected = json.loads(
            subprocess.run(
                ["docker", "image", "inspect", ref], check=True, capture_output=True, text=True
            ).stdout
        )[0]
        if inspected["Architecture"] != arch:
            sys.exit(f"bench-base-image: error: {ref} says {inspected['Architecture']}, not {arch}")
        log(f"{ref} loaded ({inspected['Size'] / 1e6:.1f} MB, {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
