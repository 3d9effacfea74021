"""docs/ci.md's scheduled lock refresh, both jobs run as written (tests/support/ci_pipelines) against
the hermetic signed archive of tests/support/fresh_archive.py.

The checkout is a real clone of a local bare repository holding a recipe and its lock; the jobs
push their branch there. The GitHub job opens its pull request with `gh`, the one stand-in: a
script that records its arguments (there is no GitHub here). The GitLab job opens its merge
request with git push options, which the bare repository's post-receive hook records.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ci_pipelines import Runner, doc_blocks, run_github, run_gitlab
from tests.support.fresh_archive import Archive, recipe_text
from tests.support.inprocess import xarch_in_process
from xarch.sources.debian.lock import Lock

pytest_plugins = ["tests.support.debian_fixtures"]

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "ci.md"
GITHUB = ".github/workflows/refresh-lock.yml"
GITLAB = "refresh-lock.gitlab-ci.yml"
BRANCH = "xarch/refresh-lock"
RECIPE = "fresh/xarch.yaml"


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def origin(tmp_path: Path, archive: Archive, debian_keyring: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bare repository with one commit: fresh/xarch.yaml and its lock (version 1 of everything)."""
    monkeypatch.setenv("XARCH_CACHE", str(tmp_path / "lock-cache"))
    work = tmp_path / "template"
    (work / "fresh").mkdir(parents=True)
    url = archive.server.url
    (work / RECIPE).write_text(recipe_text(f"{url}/debian", f"{url}/debian-security", debian_keyring))
    assert xarch_in_process("lock", "-f", str(work / RECIPE)).code == 0
    git("init", "-q", "-b", "main", cwd=work)
    git("add", ".", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "start", cwd=work)
    bare = tmp_path / "origin.git"
    git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    git("config", "receive.advertisePushOptions", "true", cwd=bare)
    hook = bare / "hooks" / "post-receive"
    hook.write_text('#!/bin/sh\ni=0\nwhile [ "$i" -lt "${GIT_PUSH_OPTION_COUNT:-0}" ]; do\n'
                    '  eval "printf \'%s\\n\' \\"\\$GIT_PUSH_OPTION_$i\\"" >> "$GIT_DIR/push-options"\n'
                    '  i=$((i + 1))\ndone\n')
    hook.chmod(0o755)
    return bare


def tools(folder: Path, gh_log: Path) -> Path:
    """`xarch` running this checkout's code, and `gh` recording its arguments and the body file."""
    folder.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    (folder / "xarch").write_text(f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{python}" -m xarch.cli "$@"\n')
    (folder / "gh").write_text(
        f'#!/bin/sh\necho "gh $*" >> {shlex.quote(str(gh_log))}\n'
        f'[ "$2" = create ] && cat refresh/body.md >> {shlex.quote(str(gh_log))}\nexit 0\n')
    for name in ("xarch", "gh"):
        (folder / name).chmod(0o755)
    return folder


def runner(root: Path, origin: Path, contexts: dict[str, str], overrides: dict[str, str]) -> Runner:
    def checkout(target: Path) -> None:
        git("clone", "-q", str(origin), str(target), cwd=target.parent)

    return Runner(root / "jobs", checkout, {"RECIPE": RECIPE, **overrides}, contexts,
                  path_prefix=[tools(root / "bin", root / "gh.log")])


def pushed_lock(origin: Path) -> Lock:
    """The lock on the refresh branch; the branch's one commit changes nothing else."""
    assert git("diff", "--name-only", "main", BRANCH, cwd=origin).split() == ["fresh/xarch.lock"]
    assert git("rev-list", "--count", f"main..{BRANCH}", cwd=origin).strip() == "1"
    text = git("show", f"{BRANCH}:fresh/xarch.lock", cwd=origin)
    path = origin.parent / "pushed.lock"
    path.write_text(text)
    return Lock.load(path)


def check_refreshed(origin: Path) -> None:
    lock = pushed_lock(origin)
    for platform in ("amd64", "arm64"):
        versions = {p.name: p.version for p in lock.entries(platform)}
        assert versions == {"app": "2.0", "libfoo": "2.0", "newdep": "1.0", "tool": "1.1",
                            "libbar": "1.0+deb1u1", "base": "1.0"}
    message = git("log", "-1", "--format=%B", BRANCH, cwd=origin)
    assert "Refresh fresh/xarch.lock" in message and "~ app 1.0 → 2.0" in message


@pytest.mark.slow  # each job builds and verifies (about 25 s)
def test_github_refresh_job_runs_as_written(tmp_path: Path, archive: Archive, origin: Path) -> None:
    doc = doc_blocks(DOC.read_text())[0][GITHUB]
    contexts = {"secrets.GITHUB_TOKEN": "not-a-token"}
    quiet = run_github(doc, runner(tmp_path / "first", origin, contexts, {}))
    assert "every pin is current" in quiet[0].steps[3].output
    assert BRANCH not in git("branch", "--list", cwd=origin) and not (tmp_path / "first" / "gh.log").exists()

    archive.publish_newer()
    archive.publish_security_fix()
    runs = run_github(doc, runner(tmp_path / "second", origin, contexts, {}))
    (job,) = runs
    assert [step.returncode for step in job.steps] == [0] * len(job.steps)
    assert "libbar 1.0 → 1.0+deb1u1 (stable-security, security)" in job.steps[2].output
    assert (job.workdir / "refresh" / "image" / "index.json").is_file()
    assert "all digests identical under every variation" in job.steps[3].output
    check_refreshed(origin)
    gh = (tmp_path / "second" / "gh.log").read_text()
    assert gh.startswith(f"gh pr create --head {BRANCH} --title Refresh fresh/xarch.lock "
                         "--body-file refresh/body.md\n")
    assert "  ~ tool 1.0 → 1.1" in gh


@pytest.mark.slow
def test_gitlab_refresh_job_runs_only_when_scheduled(tmp_path: Path, archive: Archive, origin: Path) -> None:
    doc = doc_blocks(DOC.read_text())[0][GITLAB]
    contexts = {"CI_DEFAULT_BRANCH": "main", "LOCK_REFRESH_TOKEN": "not-a-token",
                "CI_SERVER_HOST": "gitlab.example.invalid", "CI_PROJECT_PATH": "group/project"}
    overrides = {"PUSH_URL": str(origin)}
    assert run_gitlab(doc, runner(tmp_path / "pushed", origin, contexts, overrides), source="push") == []

    archive.publish_newer()
    archive.publish_security_fix()
    (job,) = run_gitlab(doc, runner(tmp_path / "scheduled", origin, contexts, overrides), source="schedule")
    assert job.steps[-1].returncode == 0
    check_refreshed(origin)
    assert (origin / "push-options").read_text().splitlines() == [
        "merge_request.create", "merge_request.target=main", "merge_request.title=Refresh fresh/xarch.lock",
        "merge_request.remove_source_branch"]
