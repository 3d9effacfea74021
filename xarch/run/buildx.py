"""buildx backend: a Dockerfile stage built by `docker buildx build`, one platform at a time.

Each platform is exported as a plain filesystem tar (`--output type=tar`), which every
builder can stream back to the client: the local `docker` driver (Debian 12's dockerd,
whose builder cannot export multi-platform OCI), a docker-container builder, or a remote
or multi-node one that runs each platform on a native machine. The tar is then turned
into a `Tree` with everything that varies between runs dropped (mtimes, device nodes,
owner names), so the layer writer makes the same bytes from the same files.
"""

from __future__ import annotations

import collections
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from xarch import platforms
from xarch.errors import BuildError, ExitCode
from xarch.oci.tree import Entry, Tree, TreeError
from xarch.progress import interactive

# Files up to this size stay in memory; larger ones are written once to the content folder.
INLINE_LIMIT = 64 * 1024
ERROR_TAIL_LINES = 15


class BuildxError(BuildError):
    """A buildx build failed or its stage is wrong (exit 2)."""


class BuildxMissing(BuildxError):
    """docker or its buildx plugin is not installed, or no Docker engine answers (exit 3: the host)."""

    exit_code = ExitCode.HOST


@dataclass(frozen=True)
class BuildxStage:
    """What a recipe stage hands to buildx."""

    dockerfile: Path
    context: Path
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    builder: str | None = None  # a `docker buildx create` name; None: the current builder
    no_cache: bool = False
    # Given to the build as the SOURCE_DATE_EPOCH build arg, which BuildKit 0.11+ passes to
    # every RUN step (older builders only where the Dockerfile declares `ARG SOURCE_DATE_EPOCH`),
    # so tools that stamp dates into files stamp the recipe's epoch.
    source_date_epoch: int | None = None
    # --secret id → a file holding it (xarch.run.secretmount.secret_files), for RUN --mount=type=secret.
    secrets: Mapping[str, Path] = field(default_factory=dict)


def build_stage(
    stage: BuildxStage,
    platform_names: Iterable[str],
    workdir: Path,
    *,
    log: Callable[[str], None] | None = None,
    docker: str | None = None,
) -> dict[str, Tree]:
    """Build STAGE for each platform; returns {platform name: Tree}.

    WORKDIR keeps the content of large files, which the returned trees reference: it must
    live as long as they do. Platforms are built in turn; the first failure stops the rest.
    Raises BuildxError (exit 2) for an unknown platform, a missing Dockerfile or context, or a
    failed build; BuildxMissing (exit 3) without docker, buildx or a Docker engine.
    """
    docker = docker or find_docker()
    _check_stage(stage)
    trees: dict[str, Tree] = {}
    for name in platform_names:
        try:
            plat = platforms.get(name)
        except platforms.UnknownPlatform as error:
            raise BuildxError(str(error)) from None
        trees[plat.name] = build_with_buildx(stage, plat.oci, workdir / plat.slug, log=log, docker=docker)
    return trees


def build_with_buildx(
    stage: BuildxStage,
    oci_platform: str,
    workdir: Path,
    *,
    log: Callable[[str], None] | None = None,
    docker: str | None = None,
) -> Tree:
    """One `docker buildx build --platform OCI_PLATFORM --output type=tar`, as a Tree (tree_from_tar;
    large files kept under WORKDIR/content). Raises BuildxError (exit 2) when the build fails or
    writes no tar, BuildxMissing (exit 3) without docker/buildx or an engine."""
    docker = docker or find_docker()
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="buildx-", dir=workdir) as scratch:
        tar_path = Path(scratch) / "rootfs.tar"
        run_buildx(buildx_command(docker, stage, oci_platform, tar_path), oci_platform, log)
        if not tar_path.is_file():
            raise BuildxError(f"docker buildx build for {oci_platform} wrote no {tar_path.name}")
        return tree_from_tar(tar_path, workdir / "content")


def find_docker() -> str:
    """The docker client's path (first `docker` on PATH), checked to have the buildx plugin
    (`docker buildx version` exits 0); else BuildxMissing (exit 3)."""
    docker = shutil.which("docker")
    if docker is None:
        raise BuildxMissing("docker is not installed (scripts/setup-host installs docker.io)")
    probe = subprocess.run([docker, "buildx", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise BuildxMissing("docker buildx is not installed: scripts/setup-host puts Debian's docker-buildx "
                          "into ~/.docker/cli-plugins")
    return docker


def buildx_command(docker: str, stage: BuildxStage, oci_platform: str, dest: Path) -> list[str]:
    """The argv of `docker buildx build` for STAGE on OCI_PLATFORM ("linux/arm64"), exporting the
    final stage's filesystem as a tar at DEST (buildx `--output type=tar,dest=`), without
    provenance; build args and secrets sorted by key, SOURCE_DATE_EPOCH added as a build arg
    unless STAGE sets it (BuildKit's reproducible-builds convention). Raises nothing."""
    command = [docker, "buildx", "build"]
    if stage.builder:
        command += ["--builder", stage.builder]
    command += [
        "--platform", oci_platform,
        "--file", str(stage.dockerfile),
        "--output", f"type=tar,dest={dest}",
        # Provenance and SBOM attestations would arrive as extra files in the exported tree.
        "--provenance=false",
        "--progress", "plain" if not _stderr_is_tty() else "auto",
    ]
    build_args = dict(stage.build_args)
    if stage.source_date_epoch is not None:
        build_args.setdefault("SOURCE_DATE_EPOCH", str(stage.source_date_epoch))
    for key, value in sorted(build_args.items()):
        command += ["--build-arg", f"{key}={value}"]
    for key, path in sorted(stage.secrets.items()):
        command += ["--secret", f"id={key},src={path}"]
    if stage.target:
        command += ["--target", stage.target]
    if stage.no_cache:
        command.append("--no-cache")
    command.append(str(stage.context))
    return command


def run_buildx(command: list[str], oci_platform: str, log: Callable[[str], None] | None) -> None:
    """Run buildx, passing its output through (to LOG, prefixed "[OCI_PLATFORM] ", else stderr);
    on failure raise one error with its last lines (up to ERROR_TAIL_LINES): BuildxError (exit 2),
    or BuildxMissing (exit 3) when no Docker engine answers."""
    if _stderr_is_tty() and log is None:
        # buildx draws its own live progress on a terminal, and shows its error there.
        result = subprocess.run(command, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise BuildxError(f"docker buildx build for {oci_platform} failed (exit {result.returncode}); "
                              "its output is above")
        return
    emit = log or (lambda line: print(line, file=sys.stderr, flush=True))
    tail: collections.deque[str] = collections.deque(maxlen=ERROR_TAIL_LINES)
    with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace") as process:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            emit(f"[{oci_platform}] {line}")
    if process.returncode != 0:
        last = " | ".join(line.strip() for line in tail if line.strip())
        code = process.returncode
        # The docker CLI's words when no engine answers: the host's problem (exit 3), not the stage's.
        failure = BuildxMissing if "Cannot connect to the Docker daemon" in last else BuildxError
        raise failure(f"docker buildx build for {oci_platform} failed (exit {code}): {last}")


def tree_from_tar(tar_path: Path, content_dir: Path) -> Tree:
    """The filesystem in a buildx tar as a Tree: modes, owners and link targets kept;
    mtimes, owner names, device nodes, FIFOs and xattrs dropped.

    Files over INLINE_LIMIT (64 KiB) are copied to CONTENT_DIR under their sha256 and
    referenced from there. Raises BuildxError (exit 2) for a tar Python's tarfile cannot read
    or an entry the Tree refuses; OSError when CONTENT_DIR cannot be written.
    """
    tree = Tree()
    try:
        with tarfile.open(tar_path, mode="r:") as tar:
            for member in tar:
                entry = _entry(tar, member, content_dir)
                if entry is not None:
                    tree.add(entry)
    except (tarfile.TarError, TreeError) as error:
        raise BuildxError(f"{tar_path}: cannot read the buildx output: {error}") from None
    return tree


def _entry(tar: tarfile.TarFile, member: tarfile.TarInfo, content_dir: Path) -> Entry | None:
    path, mode, uid, gid = member.name, member.mode & 0o7777, member.uid, member.gid
    if member.isdir():
        return Entry(path, "dir", mode, uid, gid)
    if member.issym():
        return Entry(path, "symlink", mode, uid, gid, linkname=member.linkname)
    if member.islnk():
        return Entry(path, "hardlink", mode, uid, gid, linkname=member.linkname)
    if member.isreg():
        extracted = tar.extractfile(member)
        assert extracted is not None
        if member.size <= INLINE_LIMIT:
            return Entry(path, "file", mode, uid, gid, data=extracted.read())
        return Entry(path, "file", mode, uid, gid, source=_store(extracted, content_dir))
    return None  # device nodes, FIFOs: the runtime makes its own /dev


def _store(stream: IO[bytes], content_dir: Path) -> Path:
    """Copy STREAM into CONTENT_DIR under its sha256 (identical files are kept once)."""
    content_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=content_dir, delete=False) as out:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    final = content_dir / digest.hexdigest()
    Path(out.name).replace(final)
    return final


def _check_stage(stage: BuildxStage) -> None:
    if not stage.dockerfile.is_file():
        raise BuildxError(f"{stage.dockerfile}: no such Dockerfile")
    if not stage.context.is_dir():
        raise BuildxError(f"{stage.context}: the build context is not a folder")


def _stderr_is_tty() -> bool:
    return interactive()
