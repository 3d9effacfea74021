"""End to end: build records (xarch.records, xarch.cli.replay). An unchanged plain build is
replayed from its record, byte for byte what the build wrote; every kind of change to what the
build read makes the next build a real one; a record or blob that was tampered with is never served.

Real `xarch build` processes on real files. Evidence of a replay is its stderr line; of
correctness, the output's bytes compared with a build that had no record to use (--no-cache).
Files written less than 2 s before a build keep it from being recorded (their times could hide a
change during it), so the projects are made once, then the module waits that long.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.e2e import EPOCH, REPO, index_digest, modules_loaded, xarch, xarch_ok

REPLAYED = "no input changed since the last build"
NAMES = ("unchanged", "recipe", "source", "mode", "new_file", "symlink", "env", "options", "blob",
         "record", "epoch_git", "during", "archive", "ignore", "outputs", "hard_link", "capability",
         "linked_recipe", "output_in_source", "cache_around", "pseudo", "odd_names", "output_over_source",
         "source_in_cache", "tmpdir_in_source", "default_output")


def make_project(folder: Path) -> None:
    (folder / "site" / "deep").mkdir(parents=True)
    (folder / "site" / "index.html").write_text("<p>one</p>\n")
    (folder / "site" / "deep" / "a.txt").write_text("a\n")
    (folder / "site" / "link").symlink_to("index.html")
    (folder / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (folder / "xarch.yaml").write_text(f"""\
name: record-e2e
platforms: [amd64, arm64]
epoch: {EPOCH}
files:
  - {{src: run.sh, dst: /run.sh}}
  - {{src: site, dst: /srv/site}}
""")


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("records")
    made = {}
    for name in NAMES:
        folder = root / name
        folder.mkdir()
        make_project(folder)
        made[name] = folder
    time.sleep(2.2)  # past the "changed just before the build" window of every file made above
    return made


class Run:
    """Builds of one project into numbered outputs beside it, with its own cache."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cache = folder.parent / f"{folder.name}-cache"
        self.count = 0

    def build(self, *flags: str, env: dict[str, str] | None = None,
              out: Path | None = None) -> tuple[Path, str]:
        self.count += 1
        out = out or self.folder.parent / f"{self.folder.name}-out{self.count}"
        result = xarch_ok("build", "-f", str(self.folder / "xarch.yaml"), *flags, "-o", f"oci:{out}",
                          cache=self.cache, extra_env=env)
        return out, result.stderr

    def recorded(self, *flags: str, env: dict[str, str] | None = None) -> Path:
        """Build until the record exists (the first build records), then check that the next is replayed."""
        first, err = self.build(*flags, env=env)
        assert REPLAYED not in err
        second, err = self.build(*flags, env=env)
        assert REPLAYED in err, err
        assert tree_bytes(first) == tree_bytes(second)
        return second

    def reference(self) -> str:
        """The index digest of a build that uses no record and no cache."""
        out = self.folder.parent / f"{self.folder.name}-reference{self.count}"
        self.count += 1
        xarch_ok("build", "-f", str(self.folder / "xarch.yaml"), "--no-cache", "-o", f"oci:{out}",
                 cache=self.folder.parent / f"{self.folder.name}-nocache{self.count}")
        return index_digest(out)


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def run(projects: dict[str, Path], request: pytest.FixtureRequest) -> Iterator[Run]:
    name = request.node.originalname.removeprefix("test_")
    yield Run(projects[name])


def test_unchanged(run: Run) -> None:
    replayed = run.recorded()
    out, err = run.build()
    assert REPLAYED in err
    assert index_digest(out) == index_digest(replayed) == run.reference()
    assert (out / "oci-layout").is_file()
    # what a replay prints is what the build printed (the summary of the same images)
    same = run.folder.parent / "unchanged-json"
    printed = [xarch_ok("build", "-f", str(run.folder / "xarch.yaml"), "--json", "-o", f"oci:{same}",
                        cache=run.cache) for _ in range(2)]
    assert REPLAYED not in printed[0].stderr and REPLAYED not in printed[1].stderr  # --json: quiet
    assert printed[0].stdout == printed[1].stdout and json.loads(printed[1].stdout)["images"]
    replay_again = xarch_ok("build", "-f", str(run.folder / "xarch.yaml"), "--json", "-o", f"oci:{same}",
                            "--platform", "amd64,arm64", cache=run.cache)
    assert json.loads(replay_again.stdout)["index_digest"] == json.loads(printed[0].stdout)["index_digest"]
    # what a replay loads: none of the recipe's schema, the YAML parser or click (its whole point)
    # and, printing its summary into a pipe (plain lines), not rich either
    xarch_ok("build", "-f", str(run.folder / "xarch.yaml"), "-o", f"oci:{same}", cache=run.cache)
    for flags in (["--json"], []):
        loaded = modules_loaded(["build", "-f", str(run.folder / "xarch.yaml"), *flags, "-o", f"oci:{same}"],
                                run.cache, run.folder.parent / "unchanged-modules.txt")
        assert loaded.isdisjoint({"pydantic", "click", "yaml", "requests", "docker", "rich"}), sorted(loaded)
        assert "xarch" in loaded


def expect_rebuild(run: Run, before: Path, changed: bool = True, **kwargs: object) -> Path:
    """The next build is a real one; its digest differs from BEFORE's when CHANGED."""
    out, err = run.build(**kwargs)  # type: ignore[arg-type]
    assert REPLAYED not in err, f"replayed a build whose inputs changed:\n{err}"
    assert (index_digest(out) != index_digest(before)) == changed
    return out


def test_recipe(run: Run) -> None:
    before = run.recorded()
    recipe = run.folder / "xarch.yaml"
    recipe.write_text(recipe.read_text().replace("/run.sh}", "/bin/run.sh}"))
    after = expect_rebuild(run, before)
    assert index_digest(after) == run.reference()


def test_source(run: Run) -> None:
    before = run.recorded()
    (run.folder / "site" / "deep" / "a.txt").write_text("b\n")  # same size, other bytes
    expect_rebuild(run, before)


def test_mode(run: Run) -> None:
    before = run.recorded()
    (run.folder / "run.sh").chmod(0o755)  # the image's mode follows the owner's executable bit
    expect_rebuild(run, before)


def test_new_file(run: Run) -> None:
    before = run.recorded()
    (run.folder / "site" / "deep" / "b.txt").write_text("new\n")
    expect_rebuild(run, before)


def test_symlink(run: Run) -> None:
    before = run.recorded()
    link = run.folder / "site" / "link"
    link.unlink()
    link.symlink_to("deep/a.txt")  # only the link's target changes: no file is opened differently
    expect_rebuild(run, before)


def test_env(run: Run) -> None:
    before = run.recorded()
    # SOURCE_DATE_EPOCH overrides the recipe's epoch: another image, and another record key.
    expect_rebuild(run, before, env={"SOURCE_DATE_EPOCH": str(EPOCH + 1)})


def test_options(run: Run) -> None:
    """Another command line is another record; -v and --no-cache are never replayed."""
    before = run.recorded()
    out, err = run.build("--label", "a=b")
    assert REPLAYED not in err
    assert index_digest(out) != index_digest(before)
    _, err = run.build("--platform", "arm64")
    assert REPLAYED not in err
    for flag in ("-v", "--no-cache"):
        for _ in range(2):
            _, err = run.build(flag)
            assert REPLAYED not in err


def test_blob(run: Run) -> None:
    before = run.recorded()
    store = run.cache / "sha256"
    for blob in store.iterdir():
        if blob.stat().st_size > 200:  # layers, not the JSON documents
            data = bytearray(blob.read_bytes())
            data[len(data) // 2] ^= 1
            blob.write_bytes(bytes(data))
    out, err = run.build()
    assert REPLAYED not in err, "a record whose blobs are corrupt was replayed"
    assert index_digest(out) == index_digest(before)


def test_record(run: Run) -> None:
    before = run.recorded()
    (record,) = (run.cache / "records").iterdir()
    data = json.loads(record.read_bytes())
    data["files"] = {}  # a record that claims the build read nothing
    data["folders"] = {}
    data["index"] = "sha256:" + "0" * 64
    record.write_text(json.dumps(data))
    out, err = run.build()
    assert REPLAYED not in err
    assert index_digest(out) == index_digest(before)
    record.write_text('{"format": 1, "files": {"/etc/passwd": [1, "../../x"]}}')
    out, err = run.build()
    assert REPLAYED not in err and index_digest(out) == index_digest(before)


def test_epoch_git(run: Run) -> None:
    """A build that ran a program (git, for the epoch of a recipe that has none) is not recorded."""
    recipe = run.folder / "xarch.yaml"
    recipe.write_text(recipe.read_text().replace(f"epoch: {EPOCH}\n", ""))
    time.sleep(2.2)
    for _ in range(3):
        _, err = run.build()
        assert REPLAYED not in err


def test_during(run: Run) -> None:
    """A file changed just before a build keeps it from being recorded: a change during the build
    could leave the same times. The next build, later, records."""
    (run.folder / "site" / "index.html").write_text("<p>two</p>\n")
    _, err = run.build()
    _, err = run.build()
    assert REPLAYED not in err, "recorded a build whose inputs had changed within the clock's resolution"
    time.sleep(2.2)
    run.recorded()


def test_archive(run: Run) -> None:
    """oci-archive outputs are replayed too; docker-archive ones never are."""
    tar = run.folder.parent / "archive.tar"
    for _ in range(2):
        result = xarch_ok("build", "-f", str(run.folder / "xarch.yaml"), "-o", f"oci-archive:{tar}",
                          cache=run.cache)
    assert REPLAYED in result.stderr
    first = tar.read_bytes()
    result = xarch_ok("build", "-f", str(run.folder / "xarch.yaml"), "-o", f"oci-archive:{tar}",
                      cache=run.cache)
    assert REPLAYED in result.stderr and tar.read_bytes() == first
    docker = run.folder.parent / "docker.tar"
    for _ in range(3):
        result = xarch_ok("build", "-f", str(run.folder / "xarch.yaml"), "-o", f"docker-archive:{docker}",
                          "--docker-platform", "amd64", cache=run.cache)
        assert REPLAYED not in result.stderr


def test_ignore(run: Run) -> None:
    """A file that appears where the build only looked for it (.xarchignore) is a change."""
    before = run.recorded()
    (run.folder / ".xarchignore").write_text("site/deep\n")
    expect_rebuild(run, before)


def test_outputs(run: Run) -> None:
    """A replay checks its outputs as a build does: never over the recipe, never over a folder that
    is not a layout; and a failed replay writes nothing."""
    run.recorded()
    result = xarch("build", "-f", str(run.folder / "xarch.yaml"), "-o", f"oci:{run.folder}", cache=run.cache)
    assert result.returncode == 2 and "recipe" in result.stderr, result.stderr
    busy = run.folder.parent / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine\n")
    result = xarch("build", "-f", str(run.folder / "xarch.yaml"), "-o", f"oci:{busy}", cache=run.cache)
    assert result.returncode == 2 and "not an OCI layout" in result.stderr
    assert (busy / "keep.txt").read_text() == "mine\n" and len(list(busy.iterdir())) == 1
    shutil.rmtree(busy)
    out, err = run.build(out=busy)
    assert REPLAYED in err and (busy / "index.json").is_file()
    assert os.listdir(busy) != []


def test_hard_link(run: Run) -> None:
    """Two equal files made one (a hardlink entry in the layer): not the bytes, not the modes."""
    (run.folder / "site" / "copy.html").write_text("<p>one</p>\n")
    time.sleep(2.2)
    before = run.recorded()
    copy = run.folder / "site" / "copy.html"
    copy.unlink()
    os.link(run.folder / "site" / "index.html", copy)
    time.sleep(2.2)
    after = expect_rebuild(run, before)
    assert index_digest(after) == run.reference()
    shutil.rmtree(run.cache / "records")  # the image cache alone must see it too
    again, err = run.build()
    assert index_digest(again) == index_digest(after)


def test_capability(run: Run) -> None:
    """security.capability is kept in the image (xarch.run.fsmeta): setting it is a change."""
    from tests.support.needs import need_tool

    setcap = need_tool("setcap")
    before = run.recorded()
    subprocess.run([setcap, "cap_net_bind_service=+ep", str(run.folder / "run.sh")], check=True)
    time.sleep(2.2)
    after = expect_rebuild(run, before)
    assert index_digest(after) == run.reference()
    shutil.rmtree(run.cache / "records")  # the image cache alone must see it too
    subprocess.run([setcap, "-r", str(run.folder / "run.sh")], check=True)
    time.sleep(2.2)
    again, _ = run.build()
    assert index_digest(again) == index_digest(before)


def test_linked_recipe(run: Run) -> None:
    """`-f current/xarch.yaml` with current -> v1, then -> v2: another recipe folder, another build."""
    v1, v2 = run.folder / "v1", run.folder / "v2"
    v1.mkdir()
    make_project(v1)
    shutil.copytree(v1, v2, symlinks=True)
    (v2 / "site" / "index.html").write_text("<p>CHANGED</p>\n")
    (run.folder / "current").symlink_to("v1")
    time.sleep(2.2)
    linked = Run(run.folder / "current")
    linked.cache = run.cache
    before = linked.recorded()
    (run.folder / "current").unlink()
    (run.folder / "current").symlink_to("v2")
    time.sleep(2.2)
    after = expect_rebuild(linked, before)
    assert index_digest(after) == linked.reference()


def test_output_in_source(run: Run) -> None:
    """An output inside a folder the recipe copies is no source (never_source): a build that
    writes one there is not recorded, and a record made elsewhere is not replayed for it."""
    (run.folder / "site" / "stale").mkdir()
    (run.folder / "site" / "stale" / "x.txt").write_text("x\n")
    time.sleep(2.2)
    before = run.recorded()  # site/stale is a source here
    inside = run.folder / "site" / "stale"
    shutil.rmtree(inside)
    time.sleep(2.2)
    out, err = run.build(out=inside)  # a new output where a source folder was
    assert REPLAYED not in err
    assert index_digest(out) != index_digest(before)
    for _ in range(2):
        _, err = run.build(out=inside)
        assert REPLAYED not in err, "recorded a build whose output lies in a source folder"


def test_cache_around(run: Run) -> None:
    """A recipe folder inside XARCH_CACHE: what is read below the cache is not watched, so never recorded."""
    inside = Run(run.folder)
    inside.cache = run.folder  # XARCH_CACHE=$PWD
    for _ in range(3):
        _, err = inside.build()
        assert REPLAYED not in err
    (run.folder / "site" / "index.html").write_text("<p>edited</p>\n")
    out, err = inside.build()
    assert REPLAYED not in err


def test_pseudo(run: Run) -> None:
    """A recipe read from /dev/stdin (or any file below /dev, /proc, /sys) is never recorded."""
    recipe = run.folder.parent / "pseudo.yaml"
    recipe.write_text("name: pseudo\nplatforms: [amd64]\nepoch: 1\n"
                      "directories: [{path: /data, mode: '0755'}]\n")
    time.sleep(2.2)
    for _ in range(3):
        with recipe.open() as stdin:  # `xarch build -f /dev/stdin < pseudo.yaml`
            result = subprocess.run([sys.executable, "-m", "xarch.cli", "build", "-f", "/dev/stdin", "-o",
                                     f"oci:{run.folder.parent / 'pseudo-out'}"], stdin=stdin, text=True,
                                    capture_output=True, env={**os.environ, "XARCH_CACHE": str(run.cache),
                                                              "PYTHONPATH": str(REPO)}, cwd=REPO, check=False)
        assert result.returncode == 0, result.stderr
        assert REPLAYED not in result.stderr


def test_odd_names(run: Run) -> None:
    """A source named with bytes that are not UTF-8, and such an environment value: recorded and
    replayed like any other, never an error."""
    odd = os.fsdecode(b"caf\xe9.txt")
    (run.folder / "site" / odd).write_text("odd\n")
    time.sleep(2.2)
    env = {"XARCH_TEST_ODD": os.fsdecode(b"v\xff")}
    first, err = run.build(env=env)
    second, err = run.build(env=env)
    assert REPLAYED in err
    assert index_digest(first) == index_digest(second) == run.reference()


def test_output_over_source(run: Run) -> None:
    """`-o oci-archive:data.tar` of a recipe that copies data.tar: the output replaces what the
    build read, so such a build is never recorded, and never replayed."""
    (run.folder / "data.tar").write_text("hello\n")
    recipe = run.folder / "xarch.yaml"
    recipe.write_text(recipe.read_text() + "  - {src: data.tar, dst: /data.tar}\n")
    time.sleep(2.2)
    digests = []
    for _ in range(3):
        result = xarch_ok("build", "-f", str(recipe), "-o", f"oci-archive:{run.folder / 'data.tar'}",
                          "--json", cache=run.cache)
        assert REPLAYED not in result.stderr
        digests.append(json.loads(result.stdout)["index_digest"])
    assert len(set(digests)) == 3  # each build copies the archive the one before wrote


def test_source_in_cache(run: Run) -> None:
    """A file in XARCH_CACHE outside xarch's own folders of it is read like any other source."""
    (run.folder / "cache").mkdir()
    (run.folder / "cache" / "conf.txt").write_text("v1\n")
    recipe = run.folder / "xarch.yaml"
    recipe.write_text(recipe.read_text() + "  - {src: cache/conf.txt, dst: /etc/conf.txt}\n")
    time.sleep(2.2)
    inside = Run(run.folder)
    inside.cache = run.folder / "cache"
    inside.build()  # fills the cache: its folders are new, so not recorded
    time.sleep(2.2)
    before = inside.recorded()
    (run.folder / "cache" / "conf.txt").write_text("v2-changed\n")
    time.sleep(2.2)
    after = expect_rebuild(inside, before)
    assert index_digest(after) == inside.reference()


def test_tmpdir_in_source(run: Run) -> None:
    """TMPDIR inside a folder the recipe copies: the build's own temporary folder is no source."""
    env = {"TMPDIR": str(run.folder / "site")}
    digests = set()
    for _ in range(2):
        out, _ = run.build("--no-cache", env=env)
        digests.add(index_digest(out))
    assert len(digests) == 1 and digests == {run.reference()}


def test_default_output(run: Run) -> None:
    """`cd project && python -m xarch.cli build`: the default output (dist/NAME) lies under the
    working folder, which the import system lists (sys.path[0]); that listing is not the build's."""
    for attempt in range(3):
        if attempt == 1:
            time.sleep(2.2)  # the first build made dist/ in the project folder: not recorded then
        result = subprocess.run([sys.executable, "-m", "xarch.cli", "build"], cwd=run.folder, text=True,
                                capture_output=True, env={**os.environ, "XARCH_CACHE": str(run.cache),
                                                          "PYTHONPATH": str(REPO)}, check=False)
        assert result.returncode == 0, result.stderr
        assert (REPLAYED in result.stderr) == (attempt == 2), (attempt, result.stderr)
