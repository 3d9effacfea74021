"""buildx backend: Dockerfile stages built per platform by a real `docker buildx`, as Trees."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import docker
import pytest

from tests.support.dockerd import unique_tag
from tests.support.needs import need_binfmt, need_tool
from xarch.oci.tree import Tree
from xarch.run.buildx import (
    BuildxError,
    BuildxStage,
    build_stage,
    build_with_buildx,
)


def snapshot(tree: Tree) -> list[tuple[object, ...]]:
    """Everything a layer is made of, with file contents as digests."""
    return [(e.path, e.type, oct(e.mode), e.uid, e.gid, e.linkname, hashlib.sha256(e.read()).hexdigest())
            for e in tree]


@pytest.fixture
def qemu_aarch64() -> None:
    need_binfmt("aarch64")


# --- real buildx builds -----------------------------------------------------------------------


@pytest.fixture
def per_arch_context(tmp_path: Path, arm64_busybox: Path) -> Path:
    """A context with a static busybox per architecture and a Dockerfile that needs no registry."""
    host_busybox = need_tool("busybox")
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy(host_busybox, context / "busybox-amd64")
    shutil.copy(arm64_busybox, context / "busybox-arm64")
    (context / "Dockerfile").write_text(
        "FROM scratch\n"
        "ARG TARGETARCH\n"
        "ARG NOTE=none\n"
        "COPY busybox-${TARGETARCH} /bin/busybox\n"
        "COPY --chmod=600 note.txt /etc/note\n"
    )
    (context / "note.txt").write_text("a note\n")
    return context


@pytest.mark.docker
@pytest.mark.slow
def test_one_build_per_platform_gives_each_its_own_tree(buildx: str, per_arch_context: Path, tmp_path: Path,
                                                       arm64_busybox: Path) -> None:
    stage = BuildxStage(per_arch_context / "Dockerfile", per_arch_context)
    lines: list[str] = []
    trees = build_stage(stage, ["amd64", "linux/arm64"], tmp_path / "work", log=lines.append, docker=buildx)

    assert list(trees) == ["amd64", "arm64"]
    for arch, expected in (("amd64", per_arch_context / "busybox-amd64"), ("arm64", arm64_busybox)):
        busybox = trees[arch].get("bin/busybox")
        assert busybox is not None and busybox.read() == expected.read_bytes()
        assert busybox.mode == 0o755
        note = trees[arch].get("etc/note")
        assert note is not None and note.mode == 0o600 and note.read() == b"a note\n"
    assert any(line.startswith("[linux/arm64] ") for line in lines)
    assert any(line.startswith("[linux/amd64] ") for line in lines)


@pytest.mark.docker
@pytest.mark.qemu
@pytest.mark.slow
def test_an_arm64_run_step_runs_under_qemu(buildx: str, busybox_arm64_image: str, qemu_aarch64: None,
                                           tmp_path: Path) -> None:
    stage = arm64_run_stage(tmp_path, busybox_arm64_image, {"GREETING": "hello"})
    tree = build_with_buildx(stage, "linux/arm64", tmp_path / "work", log=lambda _line: None, docker=buildx)
    hello = tree.get("out/hello")
    assert hello is not None and hello.read() == b"hello from aarch64\n" and hello.mode == 0o640
    link = tree.get("out/link")
    assert link is not None and (link.type, link.linkname) == ("symlink", "hello")
    owned = tree.get("out/owned")
    assert owned is not None and (owned.uid, owned.gid, owned.read()) == (1000, 1000, b"owned\n")
    again = tree.get("out/owned-too")
    assert again is not None and (again.type, again.linkname) == ("hardlink", "out/owned")
    assert not any(entry.path.startswith("dev/") for entry in tree)


@pytest.mark.docker
@pytest.mark.qemu
@pytest.mark.slow
def test_two_builds_give_identical_trees(buildx: str, busybox_arm64_image: str, qemu_aarch64: None,
                                         tmp_path: Path) -> None:
    stage = arm64_run_stage(tmp_path, busybox_arm64_image, {"GREETING": "same"}, no_cache=True)
    first = build_with_buildx(stage, "linux/arm64", tmp_path / "one", log=lambda _line: None, docker=buildx)
    second = build_with_buildx(stage, "linux/arm64", tmp_path / "two", log=lambda _line: None, docker=buildx)
    assert snapshot(first) == snapshot(second)
    assert "out/hello" in first


@pytest.mark.docker
@pytest.mark.qemu
def test_a_failing_step_is_one_error_with_its_last_lines(buildx: str, busybox_arm64_image: str,
                                                         qemu_aarch64: None, tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {busybox_arm64_image}\nRUN echo about-to-fail && exit 3\n")
    workdir = tmp_path / "work"
    with pytest.raises(BuildxError) as caught:
        build_with_buildx(BuildxStage(context / "Dockerfile", context), "linux/arm64", workdir,
                       log=lambda _line: None, docker=buildx)
    message = str(caught.value)
    assert message.startswith("docker buildx build for linux/arm64 failed (exit 1): ")
    assert "exit code: 3" in message
    assert "\n" not in message
    assert not list(workdir.rglob("*.tar")), "a failed build left its output behind"


@pytest.mark.docker
def test_the_epoch_reaches_run_steps_that_ask_for_it(buildx: str, tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy(need_tool("busybox"), context / "busybox")
    (context / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        "ARG SOURCE_DATE_EPOCH\n"
        'RUN ["/bin/busybox", "sh", "-c", "echo $SOURCE_DATE_EPOCH > /epoch"]\n'
    )
    stage = BuildxStage(context / "Dockerfile", context, source_date_epoch=1_700_000_000, no_cache=True)
    tree = build_with_buildx(stage, "linux/amd64", tmp_path / "work", log=lambda _line: None, docker=buildx)
    epoch = tree.get("epoch")
    assert epoch is not None and epoch.read() == b"1700000000\n"


@pytest.mark.docker
def test_an_unknown_builder_is_named(buildx: str, per_arch_context: Path, tmp_path: Path) -> None:
    stage = BuildxStage(per_arch_context / "Dockerfile", per_arch_context, builder="no-such-builder")
    with pytest.raises(BuildxError, match="no-such-builder"):
        build_with_buildx(stage, "linux/amd64", tmp_path / "work", log=lambda _line: None, docker=buildx)


def arm64_run_stage(
    tmp_path: Path, base: str, build_args: dict[str, str], no_cache: bool = False
) -> BuildxStage:
    context = tmp_path / "run-context"
    context.mkdir(exist_ok=True)
    (context / "Dockerfile").write_text(
        f"FROM {base}\n"
        "ARG GREETING\n"
        'RUN mkdir -p /out && echo "$GREETING from $(uname -m)" > /out/hello && chmod 640 /out/hello'
        " && ln -s hello /out/link && echo owned > /out/owned && chown 1000:1000 /out/owned"
        " && ln /out/owned /out/owned-too\n"
    )
    return BuildxStage(context / "Dockerfile", context, build_args, no_cache=no_cache)


@pytest.mark.docker
@pytest.mark.qemu
@pytest.mark.slow
def test_buildx_output_becomes_the_same_layer_and_runs_when_loaded(
    buildx: str, busybox_arm64_image: str, qemu_aarch64: None, docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    from xarch.docker.load import load_built_image
    from xarch.oci.image import RuntimeConfig, build_image
    from xarch.oci.layer import build_layer

    stage = arm64_run_stage(tmp_path, busybox_arm64_image, {"GREETING": "layered"}, no_cache=True)
    layers = []
    for run in ("one", "two"):
        tree = build_with_buildx(stage, "linux/arm64", tmp_path / run, log=lambda _line: None, docker=buildx)
        layers.append(build_layer("rootfs", tree, epoch=0, level=6))
    assert layers[0].diff_id == layers[1].diff_id
    assert layers[0].descriptor.digest == layers[1].descriptor.digest

    image = build_image({"architecture": "arm64", "os": "linux"}, [layers[0]],
                        RuntimeConfig(env=["PATH=/bin"], cmd=["/bin/cat", "/out/link"]), epoch=0,
                        compressor="test")
    tag = unique_tag("xarch-test/buildx-layer")
    try:
        loaded = load_built_image(image, tag, docker_client)
        assert loaded.platform == "linux/arm64"
        output = docker_client.containers.run(tag, remove=True, network_disabled=True)
        assert output == b"layered from aarch64\n"
    finally:
        docker_client.images.remove(tag, force=True)
