"""What xarch writes, read by the real tools: skopeo, umoci, docker (arm64 through QEMU binfmt).

umoci cannot unpack a multi-platform layout ("tag is ambiguous"), so each platform is first
taken out with `skopeo copy --override-arch`, as a user would.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import uuid
from pathlib import Path

import docker
import pytest

from tests.support.hello import (
    HELLO,
    HelloBuild,
    copy_hello,
    run_ok,
)
from tests.support.needs import need_root, need_tool

TAG = "1.0"  # examples/hello/xarch.yaml
UNAME = {"amd64": "x86_64", "arm64": "aarch64"}


def run(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{' '.join(argv)}:\n{result.stdout}\n{result.stderr}"
    return result


def layout_blobs(layout: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir()}


def test_skopeo_inspect_raw_is_the_index_blob(hello_build: HelloBuild) -> None:
    skopeo = need_tool("skopeo")
    raw = subprocess.run([skopeo, "inspect", "--raw", f"oci:{hello_build.layout}:{TAG}"],
                         capture_output=True, check=False)
    assert raw.returncode == 0, raw.stderr.decode()
    index_blob = layout_blobs(hello_build.layout)[hello_build.index_digest.removeprefix("sha256:")]
    assert raw.stdout == index_blob


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_skopeo_inspect_of_each_platform(hello_build: HelloBuild, arch: str) -> None:
    skopeo = need_tool("skopeo")
    result = run(skopeo, "--override-arch", arch, "inspect", f"oci:{hello_build.layout}:{TAG}")
    info = json.loads(result.stdout)
    # skopeo names the digest of what the reference points at (the index), then reads ARCH's image.
    assert info["Digest"] == hello_build.index_digest
    assert (info["Architecture"], info["Os"]) == (arch, "linux")
    assert info["Labels"]["org.opencontainers.image.title"] == "hello"
    assert info["Created"] == "2023-11-14T22:13:20Z"
    assert len(info["Layers"]) == 2


def test_skopeo_copy_all_keeps_every_digest(hello_build: HelloBuild, tmp_path: Path) -> None:
    skopeo = need_tool("skopeo")
    copy = tmp_path / "copy"
    run(skopeo, "copy", "--all", "--preserve-digests", f"oci:{hello_build.layout}:{TAG}", f"oci:{copy}:{TAG}")
    top = json.loads((copy / "index.json").read_text())
    assert [m["digest"] for m in top["manifests"]] == [hello_build.index_digest]
    assert layout_blobs(copy) == layout_blobs(hello_build.layout)
    # The copy reads back through xarch as the same images.
    summary = json.loads(run_ok("inspect", str(copy), "--json").stdout)
    assert summary["images"] == hello_build.summary["images"]


def test_skopeo_copy_all_without_preserve_flag_keeps_the_digests(
    hello_build: HelloBuild, tmp_path: Path
) -> None:
    """A plain `skopeo copy --all` neither recompresses nor rewrites: the digests carry over."""
    skopeo = need_tool("skopeo")
    copy = tmp_path / "copy"
    run(skopeo, "copy", "--all", f"oci:{hello_build.layout}:{TAG}", f"oci:{copy}:{TAG}")
    top = json.loads((copy / "index.json").read_text())
    assert [m["digest"] for m in top["manifests"]] == [hello_build.index_digest]


@pytest.fixture(scope="module")
def unpacked(hello_build: HelloBuild, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each platform's image taken out with skopeo, then unpacked by umoci into a bundle."""
    skopeo, umoci = need_tool("skopeo"), need_tool("umoci")
    need_root("umoci unpack keeps owners and modes only as root")
    bundles = {}
    for arch in ("amd64", "arm64"):
        work = tmp_path_factory.mktemp(f"umoci-{arch}")
        single = work / "single"
        run(skopeo, "--override-arch", arch, "copy", f"oci:{hello_build.layout}:{TAG}", f"oci:{single}:{TAG}")
        run(umoci, "unpack", "--image", f"{single}:{TAG}", str(work / "bundle"))
        bundles[arch] = work / "bundle"
    return bundles


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_umoci_unpack_gives_the_recipe_files(unpacked: dict[str, Path], arch: str) -> None:
    rootfs = unpacked[arch] / "rootfs"
    busybox = rootfs / "bin" / "busybox"
    expected = (HELLO / "bin" / arch / "busybox").read_bytes()
    assert hashlib.sha256(busybox.read_bytes()).digest() == hashlib.sha256(expected).digest()
    assert stat.S_IMODE(busybox.stat().st_mode) == 0o755
    assert (busybox.stat().st_uid, busybox.stat().st_gid) == (0, 0)
    sh = rootfs / "bin" / "sh"
    assert sh.is_symlink() and os.readlink(sh) == "busybox"
    motd = rootfs / "etc" / "motd"
    assert motd.read_bytes() == (HELLO / "etc" / "motd").read_bytes()
    assert stat.S_IMODE(motd.stat().st_mode) == 0o644
    assert stat.S_IMODE((rootfs / "tmp").stat().st_mode) == 0o1777
    assert sorted(p.name for p in rootfs.iterdir()) == ["bin", "etc", "tmp"]
    assert sorted(p.name for p in (rootfs / "bin").iterdir()) == ["busybox", "sh"]


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_umoci_runtime_config_follows_the_recipe(unpacked: dict[str, Path], arch: str) -> None:
    config = json.loads((unpacked[arch] / "config.json").read_text())
    process = config["process"]
    assert process["args"] == ["/bin/busybox", "sh", "-c", "cat /etc/motd; echo \"arch: $(uname -m)\""]
    assert "PATH=/bin" in process["env"]
    assert process["cwd"] == "/"


# --- docker load and docker run -----------------------------------------------------------


@pytest.fixture(scope="module")
def docker_cli() -> str:
    return need_tool("docker")


def docker_archive(tmp_path: Path, arch: str) -> tuple[Path, str]:
    """A docker-archive of the example for ARCH under a tag no other test or run uses."""
    recipe = copy_hello(tmp_path / f"hello-{arch}")
    name = f"xarch-test-hello-{uuid.uuid4().hex[:10]}"
    text = recipe.read_text().replace("name: hello\n", f"name: {name}\n", 1)
    recipe.write_text(text.replace('tag: "1.0"', f'tag: "{arch}"', 1))
    target = tmp_path / f"hello-{arch}.docker.tar"
    run_ok("build", "-f", str(recipe), "-q", "--docker-platform", arch, "-o", f"docker-archive:{target}")
    return target, f"{name}:{arch}"


def load_and_run(docker_cli: str, client: docker.DockerClient, made: list[str], archive: Path,
                 ref: str) -> str:
    made.append(ref)
    loaded = run(docker_cli, "load", "-i", str(archive))
    assert f"Loaded image: {ref}" in loaded.stdout
    return run(docker_cli, "run", "--rm", "--network", "none", ref, timeout=120).stdout


@pytest.mark.docker
def test_docker_runs_the_amd64_image(tmp_path: Path, hello_binaries: Path, docker_cli: str,
                                     dockerd: docker.DockerClient, made_images: list[str]) -> None:
    archive, ref = docker_archive(tmp_path, "amd64")
    output = load_and_run(docker_cli, dockerd, made_images, archive, ref)
    motd = (HELLO / "etc" / "motd").read_text()
    assert output == motd + "arch: x86_64\n"
    image = dockerd.images.get(ref)
    assert image.attrs["Architecture"] == "amd64"
    assert image.attrs["Created"].startswith("2023-11-14T22:13:20")
    assert image.attrs["Config"]["Labels"]["org.opencontainers.image.title"] == "hello"


@pytest.mark.docker
@pytest.mark.qemu
def test_docker_runs_the_arm64_image_through_qemu(tmp_path: Path, hello_binaries: Path, docker_cli: str,
                                                  dockerd: docker.DockerClient, made_images: list[str],
                                                  arm64_emulation: object) -> None:
    archive, ref = docker_archive(tmp_path, "arm64")
    output = load_and_run(docker_cli, dockerd, made_images, archive, ref)
    motd = (HELLO / "etc" / "motd").read_text()
    assert output == motd + "arch: aarch64\n"
    assert dockerd.images.get(ref).attrs["Architecture"] == "arm64"


@pytest.mark.docker
def test_docker_keeps_the_layer_digests(tmp_path: Path, hello_binaries: Path, hello_build: HelloBuild,
                                        docker_cli: str, dockerd: docker.DockerClient,
                                        made_images: list[str]) -> None:
    """docker load's image id is the config digest, and its rootfs the diff_ids xarch computed."""
    archive, ref = docker_archive(tmp_path, "amd64")
    made_images.append(ref)
    run(docker_cli, "load", "-i", str(archive))
    image = dockerd.images.get(ref)
    layout = hello_build.layout
    blobs = layout / "blobs" / "sha256"
    index = json.loads((blobs / hello_build.index_digest.removeprefix("sha256:")).read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"].removeprefix("sha256:")).read_text())
    config = json.loads((blobs / manifest["config"]["digest"].removeprefix("sha256:")).read_text())
    assert image.attrs["RootFS"]["Layers"] == config["rootfs"]["diff_ids"]
    assert image.id == manifest["config"]["digest"]


LONG_NAMES = [
    "a" * 99,
    "d" * 60 + "/" + "e" * 60,  # ustar prefix + name
    "/".join(["f" * 50] * 6),  # 305 bytes: a PAX path record
    "g" * 60 + "/" + "h" * 50 + "/file",  # its folder's name is 111 bytes: split at the folder's "/"
    "h/" + "n" * 120,  # one part over 100 bytes
    "日本/" * 30 + "🐍.txt",
]


def test_umoci_unpacks_long_and_unicode_paths(tmp_path: Path) -> None:
    """Go's tar reader (umoci, and so docker and containerd) reads the writer's long-name headers."""
    skopeo, umoci = need_tool("skopeo"), need_tool("umoci")
    need_root("umoci unpack keeps owners and modes only as root")
    recipe = tmp_path / "recipe"
    for name in LONG_NAMES:
        (recipe / "tree" / name).parent.mkdir(parents=True, exist_ok=True)
        (recipe / "tree" / name).write_text(name)
    (recipe / "xarch.yaml").write_text(
        "name: long\nplatforms: [arm64]\nepoch: 1\nfiles:\n  - src: tree\n    dst: /srv\n"
        "symlinks:\n  - path: /srv/link\n    target: /" + "t" * 300 + "\n"
    )
    run_ok("build", "-f", str(recipe / "xarch.yaml"), "-q", "-o", f"oci:{tmp_path / 'layout'}")
    run(skopeo, "--override-arch", "arm64", "copy", f"oci:{tmp_path / 'layout'}:latest",
        f"oci:{tmp_path / 'single'}:latest")
    run(umoci, "unpack", "--image", f"{tmp_path / 'single'}:latest", str(tmp_path / "bundle"))
    srv = tmp_path / "bundle" / "rootfs" / "srv"
    for name in LONG_NAMES:
        assert (srv / name).read_text() == name
    assert os.readlink(srv / "link") == "/" + "t" * 300
    # os.walk, not Path.rglob: 3.10's rglob stats a symlink's 300-byte target and fails.
    found = {str((Path(d) / f).relative_to(srv)) for d, _, files in os.walk(srv) for f in files
             if not (Path(d) / f).is_symlink()}
    assert found == set(LONG_NAMES)
