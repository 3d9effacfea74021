"""`xarch push` against the real Debian docker-registry on 127.0.0.1, read back with skopeo."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from tests.support.needs import missing, need_tool
from tests.support.registry import (
    FlakyProxy,
    Registry,
    make_layout,
    published_digests,
)
from xarch.oci.layout import LayoutError
from xarch.progress import TransferBoard
from xarch.registry.client import Settings
from xarch.registry.errors import RegistryError, RegistryUsageError
from xarch.registry.mediatypes import DOCKER_LIST, DOCKER_MANIFEST, sha256_digest
from xarch.registry.progress import progress_for
from xarch.registry.pull import fetch_image, pull_layout
from xarch.registry.push import push_layout

MiB = 1024 * 1024
FAST = Settings(backoff=0.05, max_backoff=0.5)


def skopeo_raw(ref: str) -> bytes:
    need_tool("skopeo")
    return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                          check=True, capture_output=True).stdout


def test_push_two_platforms_skopeo_reads_exact_index(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"], tag="v1")
    lines = tmp_path / "progress.txt"
    with lines.open("w") as stream:
        result = push_layout(layout.path, f"{registry.host}/demo/app", progress=progress_for(stream))

    assert skopeo_raw(f"{registry.host}/demo/app:v1") == layout.index_bytes  # the layout's tag is used
    for name, manifest in layout.manifests.items():
        digest = result.manifests[f"linux/{name}"]
        assert skopeo_raw(f"{registry.host}/demo/app@{digest}") == manifest
    assert result.stats.bytes_sent == layout.blob_bytes
    assert result.stats.blobs_sent == len(layout.blob_sizes) == 5  # the shared base layer goes once
    assert len(lines.read_text().splitlines()) == 5  # one plain progress line per blob off a tty
    # skopeo resolves a platform through the index and parses the config xarch sent.
    inspected = json.loads(subprocess.run(
        ["skopeo", "--override-arch", "arm64", "inspect", "--tls-verify=false",
         f"docker://{registry.host}/demo/app:v1"], check=True, capture_output=True).stdout)
    assert inspected["Architecture"] == "arm64"


def test_repush_sends_no_blob_bytes(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"])
    push_layout(layout.path, f"{registry.host}/demo/app:v1")
    again = push_layout(layout.path, f"{registry.host}/demo/app:v1")
    assert again.stats.bytes_sent == 0
    assert again.stats.bytes_skipped == layout.blob_bytes
    assert again.stats.blobs_skipped == 5


def test_cross_repository_mount_and_fallback_when_answered_202(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"])
    push_layout(layout.path, f"{registry.host}/team/base:v1")

    mounted = push_layout(layout.path, f"{registry.host}/team/app:v1", mount_from=["team/base"])
    assert (mounted.stats.blobs_mounted, mounted.stats.bytes_mounted) == (5, layout.blob_bytes)
    assert mounted.stats.bytes_sent == 0
    assert skopeo_raw(f"{registry.host}/team/app:v1") == layout.index_bytes

    # A source that lacks the blobs: the registry answers 202 and opens an upload, which is used.
    fallback = push_layout(layout.path, f"{registry.host}/team/other:v1", mount_from=["team/empty"])
    assert (fallback.stats.blobs_mounted, fallback.stats.blobs_sent) == (0, 5)
    assert fallback.stats.bytes_sent == layout.blob_bytes
    assert skopeo_raw(f"{registry.host}/team/other:v1") == layout.index_bytes
    log = registry.log.read_text()
    assert "mount=" in log and "team%2Fempty" in log

    # Sources tried in order: the first declines (its upload session is dropped), the second mounts.
    second = push_layout(layout.path, f"{registry.host}/team/third:v1",
                         mount_from=["team/empty", "team/base"])
    assert (second.stats.blobs_mounted, second.stats.bytes_sent) == (5, 0)
    assert registry.log.read_text().count('"DELETE /v2/team/third/blobs/uploads/') == 5


def test_docker_format_writes_manifest_list(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm/v7"])
    result = push_layout(layout.path, f"{registry.host}/demo/docker:v1", fmt="docker")
    raw = json.loads(skopeo_raw(f"{registry.host}/demo/docker:v1"))
    assert raw["mediaType"] == DOCKER_LIST
    assert [m["mediaType"] for m in raw["manifests"]] == [DOCKER_MANIFEST, DOCKER_MANIFEST]
    assert [m["platform"].get("variant") for m in raw["manifests"]] == [None, "v7"]
    # Other bytes, other digests: expected and documented for --format docker.
    assert result.digest != sha256_digest(layout.index_bytes)
    assert fetch_image(f"{registry.host}/demo/docker:v1").digest == result.digest
    arm = json.loads(skopeo_raw(f"{registry.host}/demo/docker@{result.manifests['linux/arm/v7']}"))
    assert arm["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    layer_types = {layer["mediaType"] for layer in arm["layers"]}
    assert layer_types == {"application/vnd.docker.image.rootfs.diff.tar.gzip"}
    inspected = json.loads(subprocess.run(
        ["skopeo", "--override-arch", "arm", "--override-variant", "v7", "inspect", "--tls-verify=false",
         f"docker://{registry.host}/demo/docker:v1"], check=True, capture_output=True).stdout)
    assert inspected["Architecture"] == "arm"


@pytest.mark.slow
def test_large_blob_goes_in_chunks(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64"], big_layer=3 * MiB + 123)
    settings = Settings(chunk_size=MiB)
    chunks: list[int] = []
    result = push_layout(layout.path, f"{registry.host}/demo/big:v1", settings=settings,
                         on_chunk=lambda digest, offset: chunks.append(offset))
    assert len(chunks) == 4  # 3 MiB + 123 bytes in 1 MiB chunks
    assert result.stats.bytes_sent == layout.blob_bytes
    assert skopeo_raw(f"{registry.host}/demo/big:v1") == layout.index_bytes
    assert "PATCH /v2/demo/big/blobs/uploads/" in registry.log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 3])
def test_upload_cut_off_mid_blob_resumes_where_it_stopped(registry: Registry, tmp_path: Path,
                                                          jobs: int) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"], big_layer=4 * MiB)
    restarter: list[threading.Thread] = []
    once = threading.Lock()

    def cut(digest: str, offset: int) -> None:
        with once:
            if offset != 2 * MiB or restarter:
                return
            registry.stop()  # the server is gone mid-blob; it comes back a moment later on the same storage

            def back() -> None:
                time.sleep(1.0)
                registry.start()

            restarter.append(threading.Thread(target=back))
            restarter[0].start()

    result = push_layout(layout.path, f"{registry.host}/demo/cut:v1",
                         settings=Settings(chunk_size=MiB, jobs=jobs), on_chunk=cut)
    restarter[0].join()
    assert registry.starts == 2
    if jobs == 1:
        assert (result.stats.resumed_uploads, result.stats.restarted_uploads) == (1, 0)
        assert result.stats.bytes_sent == layout.blob_bytes  # not one chunk sent twice
    else:
        # The other big blob was mid-PATCH when the server died. Either it resumes, or the registry
        # no longer agrees with its upload state (it answers 404 and cancels the upload; seen with
        # docker-registry 2.8: "upload resumed at wrong offset") and that blob alone starts over,
        # re-sending at most the 2 MiB it had before the cut.
        assert result.stats.resumed_uploads >= 1
        extra = result.stats.bytes_sent - layout.blob_bytes
        assert 0 <= extra <= result.stats.restarted_uploads * 2 * MiB
    assert skopeo_raw(f"{registry.host}/demo/cut:v1") == layout.index_bytes


@pytest.mark.slow
def test_failed_push_sends_only_missing_blobs_on_retry(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"], big_layer=3 * MiB)
    # One upload at a time, so what made it before the cut is known exactly.
    settings = Settings(chunk_size=MiB, retries=1, backoff=0.05, jobs=1)
    big_digests: set[str] = set()

    def kill(digest: str, offset: int) -> None:
        if offset == MiB and registry.process is not None and not big_digests:
            big_digests.add(digest)
            registry.stop()  # and it stays down: this push must fail

    with pytest.raises(RegistryError) as caught:
        push_layout(layout.path, f"{registry.host}/demo/retry:v1", settings=settings, on_chunk=kill)
    assert "\n" not in str(caught.value) and registry.host in str(caught.value)
    with pytest.raises(subprocess.CalledProcessError):
        skopeo_raw(f"{registry.host}/demo/retry:v1")  # the tag is never written by a failed push

    registry.start()
    second = push_layout(layout.path, f"{registry.host}/demo/retry:v1", settings=settings)
    amd64 = json.loads(layout.manifests["amd64"])
    assert big_digests == {amd64["layers"][2]["digest"]}  # amd64's big layer was cut at 1 MiB
    # Its config and two small layers made it before the cut: skipped now.
    made_it = amd64["config"]["size"] + amd64["layers"][0]["size"] + amd64["layers"][1]["size"]
    assert second.stats.blobs_skipped == 3
    # The big blob continues from the 1 MiB the registry kept (the upload URL was remembered).
    assert second.stats.resumed_uploads == 1
    assert second.stats.bytes_skipped == made_it + MiB
    assert second.stats.bytes_sent == layout.blob_bytes - made_it - MiB
    assert skopeo_raw(f"{registry.host}/demo/retry:v1") == layout.index_bytes


def test_retries_5xx_with_backoff(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"])
    with FlakyProxy(registry.host, failures=4) as proxy:
        result = push_layout(layout.path, f"{proxy.host}/demo/flaky:v1", settings=FAST)
    assert result.stats.retries >= 4
    assert skopeo_raw(f"{registry.host}/demo/flaky:v1") == layout.index_bytes


def test_retries_dropped_connections(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"])
    with FlakyProxy(registry.host, failures=3, drop=True) as proxy:
        result = push_layout(layout.path, f"{proxy.host}/demo/dropped:v1", settings=FAST)
    assert result.stats.retries >= 3
    assert skopeo_raw(f"{registry.host}/demo/dropped:v1") == layout.index_bytes


@pytest.mark.slow
def test_chunk_refused_with_503_resumes_from_registry_range(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64"], big_layer=3 * MiB)
    settings = Settings(chunk_size=MiB, backoff=0.05)
    # The second chunk is refused twice; the registry's Range says 1 MiB arrived, so it goes on from there.
    with FlakyProxy(registry.host, failures=2, method="PATCH", after=1) as proxy:
        result = push_layout(layout.path, f"{proxy.host}/demo/patchy:v1", settings=settings)
    assert (result.stats.resumed_uploads, result.stats.restarted_uploads) == (2, 0)
    assert result.stats.bytes_sent == layout.blob_bytes
    assert skopeo_raw(f"{registry.host}/demo/patchy:v1") == layout.index_bytes


def test_gives_up_after_retries_with_one_line(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64"])
    with FlakyProxy(registry.host, failures=1000) as proxy, pytest.raises(RegistryError) as caught:
        push_layout(layout.path, f"{proxy.host}/demo/down:v1", settings=Settings(retries=2, backoff=0.01))
    assert "\n" not in str(caught.value)


def test_tls_with_ca_cert_env_bundle_or_insecure(tls_registry: Registry, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"])
    target = f"{tls_registry.host}/secure/app:v1"
    with pytest.raises(RegistryError) as caught:
        push_layout(layout.path, target, settings=FAST)
    assert "TLS" in str(caught.value) and "--ca-cert" in str(caught.value)

    result = push_layout(layout.path, target, settings=Settings(ca_cert=str(tls_registry.tls_cert)))
    assert result.stats.bytes_sent == layout.blob_bytes
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_registry.tls_cert))
    assert push_layout(layout.path, target).stats.bytes_sent == 0
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    assert push_layout(layout.path, target, settings=Settings(insecure=True)).stats.bytes_sent == 0
    assert skopeo_raw(target) == layout.index_bytes


def test_plain_http_only_for_localhost_or_insecure(tmp_path: Path) -> None:
    from xarch.registry.client import RegistryClient

    assert RegistryClient("127.0.0.1:5000").plain_http_allowed
    assert RegistryClient("localhost:5000").plain_http_allowed
    assert not RegistryClient("registry.example:5000").plain_http_allowed
    assert RegistryClient("registry.example:5000", settings=Settings(insecure=True)).plain_http_allowed


def test_broken_layout_is_refused_before_anything_is_sent(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64"])
    victim = next(d for d in layout.blob_sizes)
    blob = layout.path / "blobs" / "sha256" / victim.split(":")[1]
    blob.write_bytes(blob.read_bytes()[:-1] + b"X")
    with pytest.raises(LayoutError) as caught:
        push_layout(layout.path, f"{registry.host}/demo/broken:v1")
    assert victim in str(caught.value)
    # Only questions were asked (HEAD: which blobs must be sent, and so hashed); nothing was written.
    assert not re.search(r'"(POST|PUT|PATCH|DELETE) /v2/demo/broken', registry.log.read_text())


def test_pull_back_and_published_digests(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm/v7"])
    pushed = push_layout(layout.path, f"{registry.host}/demo/pull:v1")
    assert published_digests(f"{registry.host}/demo/pull:v1") == pushed.manifests
    assert set(pushed.manifests) == {"linux/amd64", "linux/arm/v7"}

    pulled = pull_layout(f"{registry.host}/demo/pull:v1", tmp_path / "pulled")
    assert pulled.data == layout.index_bytes
    assert sorted(p.name for p in (tmp_path / "pulled/blobs/sha256").iterdir()) == \
        sorted(p.name for p in (layout.path / "blobs/sha256").iterdir())
    # What was pulled pushes to the same bytes elsewhere.
    again = push_layout(tmp_path / "pulled", f"{registry.host}/demo/copy:v1")
    assert again.digest == pushed.digest
    assert skopeo_raw(f"{registry.host}/demo/copy:v1") == layout.index_bytes


def test_oci_archive_with_unsafe_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(LayoutError, match="unsafe member '../escaped'"):
        push_layout(archive, "127.0.0.1:1/never/contacted:v1")
    assert not (tmp_path.parent / "escaped").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise(registry: Registry, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)  # CI gets plain lines even on a terminal (xarch.progress)
    layout = make_layout(tmp_path / "layout", ["amd64"], big_layer=2 * MiB)
    terminal = _Terminal()
    progress = progress_for(terminal)
    assert isinstance(progress, TransferBoard) and progress.bars is not None
    push_layout(layout.path, f"{registry.host}/demo/bar:v1", settings=Settings(chunk_size=MiB),
                progress=progress)
    assert "sent 2.1 MB" in terminal.getvalue() and "━" in terminal.getvalue()
    plain = io.StringIO()
    push_layout(layout.path, f"{registry.host}/demo/bar:v1", progress=progress_for(plain))
    assert plain.getvalue().count("already there, skipped") == 4  # config and three layers


def imagetools(*args: str) -> subprocess.CompletedProcess[bytes]:
    """`docker buildx imagetools` (talks to the registry itself; no dockerd needed)."""
    need_tool("docker")
    if subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode != 0:
        missing("docker buildx is not installed (Debian trixie's docker-buildx; scripts/setup-host)")
    return subprocess.run(["docker", "buildx", "imagetools", *args], capture_output=True, timeout=120,
                          check=True)


def test_buildx_imagetools_reads_what_xarch_pushed(registry: Registry, tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "layout", ["amd64", "arm64", "arm/v7"])
    result = push_layout(layout.path, f"{registry.host}/demo/imagetools:v1")
    assert imagetools("inspect", "--raw", f"{registry.host}/demo/imagetools:v1").stdout == layout.index_bytes
    listing = imagetools("inspect", f"{registry.host}/demo/imagetools:v1").stdout.decode()
    for platform, digest in result.manifests.items():
        assert f"Platform:  {platform}" in listing and digest in listing

    push_layout(layout.path, f"{registry.host}/demo/imagetools:docker", fmt="docker")
    listing = imagetools("inspect", f"{registry.host}/demo/imagetools:docker").stdout.decode()
    assert DOCKER_LIST in listing and "linux/arm/v7" in listing


def test_push_command_prints_a_summary(registry: Registry, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from xarch.cli.push import push_command

    layout = make_layout(tmp_path / "layout", ["amd64", "arm64"])
    args = [str(layout.path), f"{registry.host}/demo/cli", "--format", "docker", "-q"]
    outcome = CliRunner().invoke(push_command, args)
    assert outcome.exit_code == 0, outcome.output
    lines = outcome.stdout.splitlines()
    assert lines[0].startswith(f"pushed {registry.host}/demo/cli:v1@sha256:")
    assert lines[1].split()[0] == "linux/amd64" and lines[2].split()[0] == "linux/arm64"
    assert lines[3].strip().startswith("blobs: 5 sent (")
    assert json.loads(skopeo_raw(f"{registry.host}/demo/cli:v1"))["mediaType"] == DOCKER_LIST

    refused = CliRunner().invoke(push_command, [*args[:2], "--username", "u"])
    assert isinstance(refused.exception, RegistryUsageError) and refused.exception.exit_code == 2
    assert "--username needs --password-stdin" in str(refused.exception)


def test_layout_with_several_tags_pushes_the_named_one(registry: Registry, tmp_path: Path) -> None:
    first = make_layout(tmp_path / "first", ["amd64"], tag="v1")
    second = make_layout(tmp_path / "second", ["arm64"], tag="v2", seed=7)
    # One layout holding both images, as skopeo or umoci write it: two entries in index.json.
    for blob in (second.path / "blobs/sha256").iterdir():
        (first.path / "blobs/sha256" / blob.name).write_bytes(blob.read_bytes())
    top = json.loads((first.path / "index.json").read_bytes())
    top["manifests"] += json.loads((second.path / "index.json").read_bytes())["manifests"]
    (first.path / "index.json").write_text(json.dumps(top))

    push_layout(first.path, f"{registry.host}/demo/multi:v2")
    assert skopeo_raw(f"{registry.host}/demo/multi:v2") == second.index_bytes
    push_layout(first.path, f"{registry.host}/demo/multi")  # no tag given: the first entry and its tag
    assert skopeo_raw(f"{registry.host}/demo/multi:v1") == first.index_bytes
