"""docs/ci.md: both CI pipelines run as written against a real registry, and prove what they publish.

Each pipeline (GitHub Actions, GitLab CI) runs on this one machine through tests/support/ci_pipelines:
one job per platform of the matrix (amd64, arm64), then the final job, with a fresh checkout,
$HOME and $XARCH_CACHE per job, and only the declared artifacts passed between them. The registry
is a real `docker-registry` with a password, reached the way the doc logs in.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.support.ci_pipelines import (
    JobRun,
    PipelineError,
    Runner,
    doc_blocks,
    run_github,
    run_gitlab,
)
from tests.support.hello import HELLO, REPO, HelloBuild
from tests.support.needs import need_tool
from tests.support.registry import Registry
from xarch.oci.digest import OCI_INDEX

DOC = REPO / "docs" / "ci.md"
GITHUB = ".github/workflows/image.yml"
GITLAB = ".gitlab-ci.yml"
IMAGE = "ci-docs/hello"
TAG = "1.0"  # the doc's TAG, which the test reads back from the registry
NATIVE_RUNNERS = {"amd64": "ubuntu-24.04", "arm64": "ubuntu-24.04-arm"}
GITLAB_RUNNERS = {"amd64": "saas-linux-small-amd64", "arm64": "saas-linux-small-arm64"}
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def blocks() -> dict[str, str]:
    return doc_blocks(DOC.read_text())[0]


def checkout(target: Path) -> None:
    """A fresh clone stand-in: the repository's tracked files, plus the example's fetched binaries
    (ignored by git), so that fetch-busybox runs as written without downloading them again."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name, follow_symlinks=False)
    shutil.copytree(HELLO / "bin", target / "examples" / "hello" / "bin", dirs_exist_ok=True)


def xarch_shim(folder: Path) -> Path:
    """`xarch` on PATH runs this checkout's code (the doc's install step is skipped)."""
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "xarch"
    shim.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" -m xarch.cli "$@"\n')
    shim.chmod(0o755)
    return folder


def make_runner(tmp: Path, registry: Registry) -> Runner:
    assert registry.username and registry.password
    # The doc's signing key: a real `cosign generate-key-pair`, as its secrets and variables hold it.
    keys, password = tmp / "cosign-keys", "ci-docs-key-password"
    keys.mkdir(parents=True)
    made = subprocess.run([need_tool("cosign"), "generate-key-pair"], cwd=keys, capture_output=True,
                          env={**os.environ, "COSIGN_PASSWORD": password}, timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    contexts = {
        # GitHub: only these expressions besides ${{ matrix.* }}.
        "github.actor": registry.username,
        "secrets.GITHUB_TOKEN": registry.password,
        # GitLab: only these predefined variables.
        "CI_REGISTRY": registry.host,
        "CI_REGISTRY_USER": registry.username,
        "CI_REGISTRY_PASSWORD": registry.password,
        "CI_PROJECT_PATH": "ci-docs",
        # The signing key: GitHub secrets (the key's text) and a variable; GitLab File variables (paths).
        "secrets.COSIGN_PRIVATE_KEY": (keys / "cosign.key").read_text(),
        "secrets.COSIGN_PASSWORD": password,
        "vars.COSIGN_PUBLIC_KEY": (keys / "cosign.pub").read_text(),
        "COSIGN_PRIVATE_KEY": str(keys / "cosign.key"),
        "COSIGN_KEY_PASSWORD": password,
        "COSIGN_PUBLIC_KEY": str(keys / "cosign.pub"),
    }
    overrides = {"REGISTRY": registry.host, "IMAGE": IMAGE, "XARCH_PUSH_FLAGS": "--insecure"}
    return Runner(tmp / "jobs", checkout, overrides, contexts, path_prefix=[xarch_shim(tmp / "bin")])


def published_index_digest(registry: Registry, reference: str) -> str:
    """The digest of the bytes the registry serves for IMAGE:REFERENCE, read without xarch."""
    assert registry.username and registry.password
    url = f"http://{registry.host}/v2/{IMAGE}/manifests/{reference}"
    credentials = (registry.username, registry.password)
    reply = requests.get(url, headers={"Accept": OCI_INDEX}, auth=credentials, timeout=30)
    reply.raise_for_status()
    return "sha256:" + hashlib.sha256(reply.content).hexdigest()


def platform_of(run: JobRun) -> str:
    return run.matrix.get("platform") or run.matrix["PLATFORM"]  # GitHub's key, or GitLab's variable


def check_pipeline(runs: list[JobRun], build: HelloBuild, registry: Registry,
                   runners: dict[str, str]) -> JobRun:
    builds = [run for run in runs if run.matrix]
    finals = [run for run in runs if not run.matrix]
    assert [platform_of(run) for run in builds] == ["amd64", "arm64"]
    assert len(finals) == 1 and runs[-1] is finals[0], "one final job, after the matrix"
    for run in runs:
        assert len(run.installs()) == 1, f"{run.label}: one step installs xarch"
        assert run.image == "debian:bookworm", f"{run.label} runs in the container fetch-busybox expects"
    local = {image["platform"]: image["manifest_digest"] for image in build.summary["images"]}
    for run in builds:
        platform = platform_of(run)
        assert run.runs_on == [runners[platform]], f"{run.label} runs on a native {platform} runner"
        digest_file = run.workdir / "digests" / f"{platform}.txt"
        assert digest_file.is_file(), f"{run.label} wrote no digests/{platform}.txt"
        recorded = digest_file.read_text().strip()
        assert DIGEST.fullmatch(recorded), recorded
        assert recorded == local[f"linux/{platform}"], f"{platform}: pushed image differs from a local build"
    final = finals[0]
    assert sorted(p.name for p in (final.workdir / "digests").iterdir()) == ["amd64.txt", "arm64.txt"]
    last = final.steps[-1]
    assert "xarch verify" in last.script and "--against" in last.script and last.returncode == 0
    assert "the published image is what this recipe builds" in last.output
    assert "signatures: 3 manifest(s)" in last.output, "verify checked the index's and manifests' signatures"
    assert published_index_digest(registry, TAG) == build.index_digest, "assembled index != local build"
    # Attached beside the images: each platform's SBOMs and provenance, the publish job's cosign
    # signatures (their OCI 1.1 form), the final job's attestation.
    for platform in ("amd64", "arm64"):
        assert sorted(referrer_types(registry, local[f"linux/{platform}"])) == [
            "application/spdx+json", "application/vnd.cyclonedx+json", COSIGN_SIGNATURE,
            "application/vnd.in-toto+json"]
    assert sorted(referrer_types(registry, build.index_digest)) == [COSIGN_SIGNATURE,
                                                                    "application/vnd.in-toto+json"]
    return final


COSIGN_SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"


def referrer_types(registry: Registry, digest: str) -> list[str]:
    """artifactType of each referrer of DIGEST, from the referrers tag (docker-registry 2.8 has no API)."""
    assert registry.username and registry.password
    url = f"http://{registry.host}/v2/{IMAGE}/manifests/sha256-{digest.removeprefix('sha256:')}"
    reply = requests.get(url, headers={"Accept": OCI_INDEX}, auth=(registry.username, registry.password),
                         timeout=30)
    reply.raise_for_status()
    return [entry["artifactType"] for entry in reply.json()["manifests"]]


def test_doc_has_exactly_the_two_tested_pipelines() -> None:
    named, others = doc_blocks(DOC.read_text())
    # The scheduled lock refresh jobs run in tests/integration/test_ci_refresh.py.
    assert sorted(named) == sorted([GITHUB, GITLAB, ".github/workflows/refresh-lock.yml",
                                    "refresh-lock.gitlab-ci.yml"])
    assert others == [], "every code block of docs/ci.md is a tested pipeline"


def test_github_workflow_runs_as_written(auth_registry: Registry, hello_build: HelloBuild,
                                         tmp_path: Path) -> None:
    runner = make_runner(tmp_path, auth_registry)
    runs = run_github(blocks()[GITHUB], runner)
    final = check_pipeline(runs, hello_build, auth_registry, NATIVE_RUNNERS)
    assert [step.step for step in final.steps if step.skipped == "plumbing"] == [
        "actions/checkout@v4", "actions/download-artifact@v4"]

    # The assemble step stops when a platform's digest did not arrive, before it pushes anything.
    assemble = next(step for step in final.steps if "xarch assemble" in step.script)
    (final.workdir / "digests" / "arm64.txt").unlink()
    env = {**assemble.env, "TAG": "must-not-exist"}
    rerun = runner.shell(final, assemble.step, assemble.script, env, check=False)
    assert rerun.returncode != 0 and "digests/arm64.txt" in rerun.output, rerun.output
    with pytest.raises(requests.HTTPError):
        published_index_digest(auth_registry, "must-not-exist")

    # The verify step fails when the recipe no longer builds what was published.
    (final.workdir / "examples" / "hello" / "etc" / "motd").write_text("a different message\n")
    verify = final.steps[-1]
    rerun = runner.shell(final, verify.step, verify.script, verify.env, check=False)
    assert rerun.returncode != 0, rerun.output


def test_gitlab_pipeline_runs_as_written(auth_registry: Registry, hello_build: HelloBuild,
                                         tmp_path: Path) -> None:
    runs = run_gitlab(blocks()[GITLAB], make_runner(tmp_path, auth_registry))
    check_pipeline(runs, hello_build, auth_registry, GITLAB_RUNNERS)
    # Only the declared artifact reached the final job, not the build jobs' layouts.
    assert not any((runs[-1].workdir / f"out-{arch}").exists() for arch in ("amd64", "arm64"))


# ---- the harness refuses what it cannot run faithfully ----------------------------------------


def tiny_runner(tmp: Path) -> Runner:
    return Runner(tmp / "jobs", lambda target: None, {}, {"secrets.TOKEN": "t"})


GITHUB_TEMPLATE = """
on: push
defaults: {{run: {{shell: bash}}}}
jobs:
  build:
    runs-on: ubuntu-24.04
    strategy: {{matrix: {{platform: [a, b]}}}}
    env: {{PLATFORM: "${{{{ matrix.platform }}}}", TOKEN: "${{{{ secrets.TOKEN }}}}", {extra_env}}}
    steps:
      - run: |
          mkdir -p digests && echo "$PLATFORM $TOKEN" > "digests/$PLATFORM.txt" && touch junk
          {extra_run}
      - uses: actions/upload-artifact@v4
        with: {{name: "d-${{{{ matrix.platform }}}}", path: digests/}}
  final:
    needs: build
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/download-artifact@v4
        with: {{pattern: d-*, merge-multiple: true, path: digests}}
      - run: test "$(cat digests/a.txt digests/b.txt)" = "$(printf 'a t\\nb t')" && test ! -e junk
"""


def github(extra_env: str = "X: x", extra_run: str = "true") -> str:
    return GITHUB_TEMPLATE.format(extra_env=extra_env, extra_run=extra_run)


def test_harness_passes_only_uploaded_artifacts(tmp_path: Path) -> None:
    runs = run_github(github(), tiny_runner(tmp_path))
    assert [run.label for run in runs] == ["build (a)", "build (b)", "final"]


def test_harness_rejects_other_expressions(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"unsupported expression \$\{\{ github.sha \}\}"):
        run_github(github(extra_env='SHA: "${{ github.sha }}"'), tiny_runner(tmp_path))


def test_harness_rejects_expressions_in_scripts(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="no expression allowed here"):
        run_github(github(extra_run='echo "${{ matrix.platform }}"'), tiny_runner(tmp_path))


def test_harness_reports_a_failing_step(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"build \(a\).*exited 3"):
        run_github(github(extra_run="exit 3"), tiny_runner(tmp_path))


def test_harness_rejects_unknown_actions_and_keys(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="does not run the action docker/login-action@v3"):
        run_github(github().replace("actions/upload-artifact@v4", "docker/login-action@v3"),
                   tiny_runner(tmp_path))
    with pytest.raises(PipelineError, match="does not run if"):
        run_github(github().replace("      - run: |", "      - if: always()\n        run: |"),
                   tiny_runner(tmp_path / "2"))


GITLAB_TINY = """
stages: [build, final]
variables: {{TOKEN: $CI_TOKEN{extra}}}
build:
  stage: build
  parallel: {{matrix: [{{PLATFORM: [a, b]}}]}}
  tags: [$PLATFORM-runner]
  script:
    - mkdir -p digests && echo "$PLATFORM $TOKEN" > "digests/$PLATFORM.txt" && touch junk
  artifacts: {{paths: [digests/]}}
final:
  stage: final
  script:
    - test "$(cat digests/a.txt digests/b.txt)" = "$(printf 'a t\\nb t')" && test ! -e junk
"""


def test_gitlab_harness_passes_artifacts_and_resolves_tags(tmp_path: Path) -> None:
    runner = Runner(tmp_path / "jobs", lambda target: None, {}, {"CI_TOKEN": "t"})
    runs = run_gitlab(GITLAB_TINY.format(extra=""), runner)
    assert [run.runs_on for run in runs] == [["a-runner"], ["b-runner"], []]


def test_gitlab_harness_rejects_unknown_variables(tmp_path: Path) -> None:
    runner = Runner(tmp_path / "jobs", lambda target: None, {}, {"CI_TOKEN": "t"})
    with pytest.raises(PipelineError, match=r"unsupported variable reference \$CI_COMMIT_SHA"):
        run_gitlab(GITLAB_TINY.format(extra=", SHA: $CI_COMMIT_SHA"), runner)


def test_no_host_environment_leaks_into_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent")
    runner = tiny_runner(tmp_path)
    run = runner.new_job("probe", {}, [], None)
    result = runner.shell(run, "env", 'test -z "${DOCKER_CONFIG:-}" && echo "$HOME"', {})
    assert result.output.strip() == str(run.workdir.parent / "home")
    assert os.environ["DOCKER_CONFIG"] == "/nonexistent"
