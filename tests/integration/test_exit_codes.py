"""The exit-code table (xarch/errors.py) and kind 1 of issue 11, through the REAL CLI in a subprocess.

Every failure must be exactly one line on stderr, no traceback, the documented exit code,
and nothing written: input the checks did not foresee (nesting, a malformed lock, names
that are not UTF-8, truncated archives, a full disk) included.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.dockerd import unique_tag
from tests.support.hello import REPO, run_xarch
from tests.support.needs import need_root, need_tool
from xarch.errors import ExitCode
from xarch.oci.tar import write_tar
from xarch.oci.tree import Entry

RECIPE = """\
name: codes
platforms: [amd64, arm64]
epoch: 1700000000
files:
  - src: motd
    dst: /etc/motd
"""


def one_error_line(result: subprocess.CompletedProcess[str], code: int, *parts: str) -> str:
    """The single stderr line of a failed RESULT, checked for CODE and each of PARTS."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    assert lines[0].startswith(("xarch: error: ", "xarch: internal error: ")), lines[0]
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "motd").write_text("hello\n")
    (folder / "xarch.yaml").write_text(RECIPE)
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small image as a layout, an oci-archive and a docker-archive, plus broken copies."""
    root = tmp_path_factory.mktemp("images")
    (root / "motd").write_text("hello\n")
    (root / "xarch.yaml").write_text(RECIPE)
    result = run_xarch("build", "-q", "-f", str(root / "xarch.yaml"), "-o", f"oci:{root / 'layout'}",
                       "-o", f"oci-archive:{root / 'image.tar'}",
                       "-o", f"docker-archive:{root / 'docker.tar'}", "--docker-platform", "amd64",
                       cache=root / "cache")
    assert result.returncode == 0, result.stderr
    for name in ("image.tar", "docker.tar"):
        data = (root / name).read_bytes()
        with tarfile.open(root / name) as archive:
            last = archive.getmembers()[-1]
        # Cut inside a member's data, and exactly between two members (which tarfile alone
        # would take for a whole archive).
        (root / f"cut-{name}").write_bytes(data[: last.offset_data + 1])
        (root / f"short-{name}").write_bytes(data[: last.offset])
    shutil.copytree(root / "layout", root / "cut-layout")
    index = (root / "layout" / "index.json").read_bytes()
    (root / "cut-layout" / "index.json").write_bytes(index[: len(index) // 2])
    (root / "not-a-tar").write_text("just text, not a tar archive\n" * 30)
    # The image-layout spec's oci-layout file missing: push refused it, inspect/diff/load took it.
    shutil.copytree(root / "layout", root / "no-oci-layout")
    (root / "no-oci-layout" / "oci-layout").unlink()
    return root


# --- the table itself ---------------------------------------------------------------------


def _table(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if re.match(r"\| (\d+|code) \|", line.strip())]


def test_readme_documents_the_table_of_errors_py() -> None:
    import xarch.errors

    in_code = _table(xarch.errors.__doc__ or "")
    assert [row.split("|")[1].strip() for row in in_code[1:]] == [str(int(c)) for c in ExitCode]
    assert _table((REPO / "README.md").read_text()) == in_code


def test_an_unforeseen_exception_is_one_line_exit_70_and_a_traceback_only_with_debug() -> None:
    # A command that fails the way a bug would, run through xarch's own entry (xarch.cli.run).
    code = ("import click, xarch.cli\n"
            "@click.command()\n"
            "def bug():\n"
            "    {}['missing']\n"
            "xarch.cli.run(bug, [])\n")
    env = {k: v for k, v in os.environ.items() if k != "XARCH_DEBUG"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    line = one_error_line(result, ExitCode.INTERNAL, "xarch: internal error: KeyError: 'missing'",
                          "this is a bug; XARCH_DEBUG=1 shows the traceback")
    assert line.startswith("xarch: internal error: ")
    debug = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**env, "XARCH_DEBUG": "1"}, cwd=REPO)
    assert debug.returncode == ExitCode.INTERNAL
    assert "Traceback" in debug.stderr and debug.stderr.splitlines()[-1].startswith("xarch: internal error:")


CLASSES = [
    ("xarch.run.chroot", "IsolationUnavailable", ExitCode.HOST),
    ("xarch.run.qemu", "EmulationUnavailable", ExitCode.HOST),
    ("xarch.run.binfmt", "BinfmtError", ExitCode.HOST),
    ("xarch.run.steps", "StrategyUnavailable", ExitCode.HOST),
    ("xarch.run.buildx", "BuildxMissing", ExitCode.HOST),
    ("xarch.docker.load", "DockerUnreachable", ExitCode.HOST),
    ("xarch.registry.errors", "RegistryError", ExitCode.NETWORK),
    ("xarch.registry.errors", "AuthError", ExitCode.NETWORK),
    ("xarch.registry.errors", "InvalidReference", ExitCode.INPUT),
    ("xarch.registry.errors", "RegistryUsageError", ExitCode.INPUT),
    ("xarch.sources.debian.errors", "FetchError", ExitCode.NETWORK),
    ("xarch.sources.debian.errors", "SignatureError", ExitCode.NETWORK),
    ("xarch.sources.debian.errors", "LockError", ExitCode.INPUT),
    ("xarch.sources.debian.errors", "ResolveError", ExitCode.INPUT),
    ("xarch.sources.debian.errors", "UnpackError", ExitCode.INPUT),
    ("xarch.run.steps", "StepFailed", ExitCode.INPUT),
    ("xarch.run.buildx", "BuildxError", ExitCode.INPUT),
    ("xarch.oci.tree", "TreeError", ExitCode.INPUT),
    ("xarch.oci.layout", "LayoutError", ExitCode.INPUT),
    ("xarch.oci.tar", "TarError", ExitCode.INPUT),
    ("xarch.yamlpos", "YamlPositionError", ExitCode.INPUT),
    ("xarch.platforms", "UnknownPlatform", ExitCode.INPUT),
    ("xarch.oci.store", "DigestMismatch", ExitCode.INPUT),
    ("xarch.registry.mediatypes", "UnsupportedInDocker", ExitCode.INPUT),
    ("xarch.errors", "Verdict", ExitCode.VERDICT),
    ("xarch.sign.keys", "KeyFileError", ExitCode.INPUT),
]


@pytest.mark.parametrize("module, name, code", CLASSES, ids=[f"{c[1]}-{int(c[2])}" for c in CLASSES])
def test_each_error_class_has_its_code_of_the_table(module: str, name: str, code: int) -> None:
    import importlib

    from xarch.errors import XarchError

    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, XarchError)  # so the CLI prints it as one line, never a traceback
    assert cls.exit_code == code


def test_an_oserror_names_its_path_and_a_newline_in_a_message_stays_one_line(tmp_path: Path) -> None:
    # What a command that meets an unreadable file, or prints a name holding "\n", ends with.
    code = ("import click, xarch.cli\n"
            "from xarch.errors import InputError\n"
            "@click.command()\n"
            "@click.argument('what')\n"
            "def cmd(what):\n"
            "    if what == 'os':\n"
            f"        open({str(tmp_path / 'missing')!r})\n"
            "    raise InputError('a name with\\nnewline and \\udce9')\n"
            "import sys\n"
            "xarch.cli.run(cmd, sys.argv[1:])\n")
    missing = subprocess.run([sys.executable, "-c", code, "os"], capture_output=True, text=True, cwd=REPO)
    one_error_line(missing, ExitCode.INPUT, str(tmp_path / "missing"), "No such file or directory")
    newline = subprocess.run([sys.executable, "-c", code, "input"], capture_output=True, text=True, cwd=REPO)
    one_error_line(newline, ExitCode.INPUT, "a name with / newline and \\xe9")  # the byte it stands for


def test_a_working_folder_removed_is_named(project: Path, tmp_path: Path) -> None:
    # A build started in a folder that was then removed said only "No such file or directory".
    gone = tmp_path / "gone"
    gone.mkdir()
    result = run_xarch("build", "-f", str(project / "xarch.yaml"), "-o", f"oci:{tmp_path / 'out'}",
                       cwd=gone, preexec_fn=lambda: os.rmdir(gone))  # (run after the child's chdir)
    one_error_line(result, ExitCode.INPUT, "the working folder: No such file or directory")
    assert not (tmp_path / "out").exists()


def test_usage_errors_are_2(project: Path) -> None:
    result = run_xarch("build", "-f", str(project / "xarch.yaml"), "--no-such-option")
    one_error_line(result, ExitCode.INPUT, "xarch build: ", "--no-such-option", "(see 'xarch build --help')")


def test_an_unreachable_registry_is_4_and_a_bad_reference_2(images: Path) -> None:
    # Port 9 (discard) on localhost: nothing listens, the connection is refused.
    refused = run_xarch("push", "-q", str(images / "layout"), "127.0.0.1:9/codes:v1", "--insecure",
                        timeout=600)
    one_error_line(refused, ExitCode.NETWORK, "127.0.0.1:9")
    typed = run_xarch("push", "-q", str(images / "layout"), "localhost:5000/UPPER:v1")
    one_error_line(typed, ExitCode.INPUT, "UPPER")


def test_no_docker_engine_is_3(images: Path, tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path / 'no-dockerd.sock'}"}
    result = run_xarch("load", str(images / "layout"), "--platform", "amd64", env=env)
    one_error_line(result, ExitCode.HOST, "cannot reach the Docker engine", str(tmp_path / "no-dockerd.sock"))


def test_a_buildx_stage_without_a_docker_engine_is_3(project: Path, tmp_path: Path) -> None:
    need_tool("docker")
    (project / "Dockerfile").write_text("FROM scratch\nCOPY motd /motd\n")
    (project / "xarch.yaml").write_text(RECIPE.replace("[amd64, arm64]", "[amd64]")
                                        + 'stages:\n  b:\n    dockerfile: Dockerfile\n'
                                        + 'copy:\n  - {from: "b:/motd", dst: /copied}\n')
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path / 'no-dockerd.sock'}"}
    env.pop("SOURCE_DATE_EPOCH", None)
    out = tmp_path / "out"
    result = run_xarch("build", "-q", "-f", str(project / "xarch.yaml"), "-o", f"oci:{out}", env=env,
                       cache=tmp_path / "cache")
    one_error_line(result, ExitCode.HOST, "Cannot connect to the Docker daemon")
    assert not out.exists()


# --- kind 1: input the checks did not foresee ----------------------------------------------


@pytest.mark.parametrize("nesting", [
    pytest.param("annotations:\n  a: " + "[" * 5000 + "]" * 5000 + "\n", id="flow-5000"),
    pytest.param("labels:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200)) + "  " * 200 + "v: 1\n",
                 id="block-200"),
    pytest.param("annotations:\n  a: " + "{a: " * 80 + "1" + "}" * 80 + "\n", id="flow-80"),
])
def test_a_recipe_nested_too_deep_is_one_line(project: Path, nesting: str) -> None:
    recipe = project / "xarch.yaml"
    recipe.write_text(RECIPE + nesting)
    out = project / "out"
    result = run_xarch("build", "-q", "-f", str(recipe), "-o", f"oci:{out}", cache=project / "cache")
    one_error_line(result, ExitCode.INPUT, str(recipe), "nested more than 64 levels deep")
    assert not out.exists()


@pytest.mark.parametrize("value", ["\u0663\u0663", "\u00b2", "1_000", "+5"])
def test_an_epoch_of_anything_but_ascii_digits_is_one_line(project: Path, value: str) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": value}
    out = project / "out"
    result = run_xarch("build", "-q", "-f", str(project / "xarch.yaml"), "-o", f"oci:{out}", env=env,
                       cache=project / "cache")
    one_error_line(result, ExitCode.INPUT, "SOURCE_DATE_EPOCH: ", "not a whole number of seconds")
    assert not out.exists()


@pytest.mark.parametrize("where", ["recipe", "SOURCE_DATE_EPOCH"])
def test_an_epoch_no_tar_header_can_hold_is_one_line(project: Path, where: str) -> None:
    recipe = project / "xarch.yaml"
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    if where == "recipe":
        recipe.write_text(RECIPE.replace("epoch: 1700000000", "epoch: 99999999999999"))
        says = [f"{recipe}:3: epoch: ", "8589934591"]
    else:
        env["SOURCE_DATE_EPOCH"] = "99999999999999"
        says = ["SOURCE_DATE_EPOCH: 99999999999999 is after 8589934591"]
    out = project / "out"
    result = run_xarch("build", "-q", "-f", str(recipe), "-o", f"oci:{out}", env=env, cache=project / "cache")
    one_error_line(result, ExitCode.INPUT, *says)
    assert not out.exists()


LOCK_ENTRY = ("{architecture: amd64, filename: pool/main/h/hello/hello_2.10-3_amd64.deb, name: hello, "
              "sha256: " + "a" * 64 + ", size: 1000, suite: bookworm, version: 2.10-3}")


@pytest.mark.parametrize("old, new, field", [
    ("size: 1000", "size: notanumber", "packages.image.amd64[0] (hello).size"),
    ("size: 1000", "size: -5", "packages.image.amd64[0] (hello).size"),
    ("sha256: " + "a" * 64, "sha256: [1]", "packages.image.amd64[0] (hello).sha256"),
    ("name: hello, ", "", "packages.image.amd64[0].name"),
    ("version: 2.10-3}", "version: 2.10-3, colour: blue}", "packages.image.amd64[0] (hello).colour"),
])
def test_a_malformed_lock_names_the_lock_the_package_and_the_field(project: Path, old: str, new: str,
                                                                   field: str) -> None:
    recipe = project / "xarch.yaml"
    packages = "sources:\n  debian:\n    suites: [bookworm]\npackages: [hello]\nfiles:"
    recipe.write_text(RECIPE.replace("files:", packages).replace("[amd64, arm64]", "[amd64]"))
    lock = project / "xarch.lock"
    lock.write_text("version: 1\ninputs: {platforms: a, selections: b, source: c}\nreleases: {}\n"
                    f"packages:\n  image:\n    amd64:\n    - {LOCK_ENTRY.replace(old, new)}\n")
    out = project / "out"
    result = run_xarch("build", "-q", "-f", str(recipe), "-o", f"oci:{out}", cache=project / "cache")
    one_error_line(result, ExitCode.INPUT, str(lock), "malformed lock", field)
    assert not out.exists()


@pytest.mark.parametrize("source, says", [
    ("s:/a/../../etc", "'..' part"),
    ("s:/..", "'..' part"),
    ("s:relative", "STAGE:/absolute/path"),
])
def test_a_copy_source_that_climbs_out_of_the_stage_names_the_field(project: Path, source: str,
                                                                    says: str) -> None:
    recipe = project / "xarch.yaml"
    recipe.write_text(RECIPE + f'stages:\n  s:\n    steps: []\ncopy:\n  - {{from: "{source}", dst: /x}}\n')
    result = run_xarch("build", "-q", "-f", str(recipe), "-o", f"oci:{project / 'out'}",
                       cache=project / "cache")
    one_error_line(result, ExitCode.INPUT, f"{recipe}:11: copy[0].from: ", says)
    assert not (project / "out").exists()


BROKEN = [
    ("cut-image.tar", "truncated or corrupt tar archive"),
    ("cut-docker.tar", "truncated or corrupt tar archive"),
    ("short-image.tar", "truncated tar archive"),
    ("short-docker.tar", "truncated tar archive"),
    ("cut-layout", "index.json: not"),  # "not JSON", or push's "not valid JSON"
    ("not-a-tar", "not a tar archive"),
    ("no-oci-layout", "not an OCI layout"),
]


@pytest.mark.parametrize("name, says", BROKEN, ids=[b[0] for b in BROKEN])
@pytest.mark.parametrize("command", ["inspect", "diff", "load", "push"])
def test_a_truncated_or_foreign_image_file_is_one_line(images: Path, tmp_path: Path, command: str,
                                                       name: str, says: str) -> None:
    broken = images / name
    args = {
        "inspect": ["inspect", str(broken)],
        "diff": ["diff", str(broken), str(images / "layout")],
        "load": ["load", str(broken), "--platform", "amd64"],
        # The layout is read before any connection: no registry needs to listen.
        "push": ["push", "-q", str(broken), "127.0.0.1:9/codes:v1", "--insecure"],
    }[command]
    before = listing(images)
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path / 'unused.sock'}"}
    result = run_xarch(*args, env=env, cache=tmp_path / "cache")
    one_error_line(result, ExitCode.INPUT, str(broken), says)
    assert result.stdout == ""
    assert listing(images) == before


WRONG_SHAPES = [
    ("[]", "should be a JSON object"),
    ('{"manifests": 5}', "manifests: Input should be a valid list"),
    ('{"manifests": [5]}', "manifests[0]: should be a JSON object"),
    ('{"manifests": [{"mediaType": "x", "digest": 5, "size": 1}]}', "manifests[0].digest"),
    ('{"manifests": [{"mediaType": "x", "digest": "sha512:ab", "size": 1}]}', "manifests[0].digest"),
    ('{"manifests": [{"digest": "sha256:' + "0" * 64 + '", "size": 1}]}', "manifests[0].mediaType"),
    ('{"manifests": [{"mediaType": "x", "digest": "sha256:' + "0" * 64 + '", "size": "1"}]}',
     "manifests[0].size"),
]


@pytest.mark.parametrize("index, says", WRONG_SHAPES, ids=[w[1] for w in WRONG_SHAPES])
@pytest.mark.parametrize("command", ["inspect", "diff", "load", "push"])
def test_an_index_json_of_the_wrong_shape_names_the_field(images: Path, tmp_path: Path, command: str,
                                                          index: str, says: str) -> None:
    layout = tmp_path / "layout"
    shutil.copytree(images / "layout", layout)
    (layout / "index.json").write_text(index)
    args = {
        "inspect": ["inspect", str(layout)],
        "diff": ["diff", str(images / "layout"), str(layout)],
        "load": ["load", str(layout), "--platform", "amd64"],
        "push": ["push", "-q", str(layout), "127.0.0.1:9/codes:v1", "--insecure"],
    }[command]
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path / 'unused.sock'}"}
    result = run_xarch(*args, env=env, cache=tmp_path / "cache")
    one_error_line(result, ExitCode.INPUT, str(layout), "index.json", "not an image index", says)


def test_diff_of_a_foreign_file_on_either_side_is_one_line(images: Path, tmp_path: Path) -> None:
    result = run_xarch("diff", str(images / "layout"), str(images / "not-a-tar"), cache=tmp_path / "cache")
    one_error_line(result, ExitCode.INPUT, str(images / "not-a-tar"), "not a tar archive")


# --- names that are not UTF-8 ---------------------------------------------------------------

LATIN1 = b"caf\xe9.txt"  # "café.txt" in Latin-1: not UTF-8
BROKEN_LINK = b"l\xff"


def _layer_names(layout: Path) -> set[bytes]:
    """The member names of the one layer of the amd64 image of LAYOUT, as bytes."""
    import gzip

    def blob(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()

    index = json.loads(blob(json.loads((layout / "index.json").read_bytes())["manifests"][0]["digest"]))
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    layer = gzip.decompress(blob(manifest["layers"][0]["digest"]))
    with tarfile.open(fileobj=io.BytesIO(layer)) as archive:
        return {m.name.encode("utf-8", "surrogateescape") for m in archive}


def test_a_file_name_that_is_not_utf8_is_stored_byte_exact(project: Path, tmp_path: Path) -> None:
    tree = project / "tree"
    tree.mkdir()
    (tree / os.fsdecode(LATIN1)).write_bytes(b"x\n")
    os.symlink(os.fsdecode(LATIN1), tree / os.fsdecode(BROKEN_LINK))
    (project / "xarch.yaml").write_text(RECIPE + "  - src: tree\n    dst: /data\n")
    outs = []
    for run in ("one", "two"):
        out = tmp_path / run
        result = run_xarch("build", "-q", "-f", str(project / "xarch.yaml"), "-o", f"oci:{out}",
                           cache=tmp_path / f"cache-{run}")  # two caches: both really build
        assert result.returncode == 0, result.stderr
        outs.append(out)
    assert (outs[0] / "index.json").read_bytes() == (outs[1] / "index.json").read_bytes()
    names = _layer_names(outs[0])
    assert {b"data/" + LATIN1, b"data/" + BROKEN_LINK} <= names
    # What GNU tar unpacks is the same bytes.
    need_tool("tar")
    inspect = run_xarch("inspect", str(outs[0]))
    assert inspect.returncode == 0, inspect.stderr


@pytest.mark.docker
def test_dockerd_unpacks_names_that_are_not_utf8_byte_exact(project: Path, tmp_path: Path, docker_client: Any,
                                                            made_images: list[str]) -> None:
    long_name = b"d" * 120 + b"/" + b"\xe9" * 110  # a PAX path record with hdrcharset=BINARY
    tree = project / "tree"
    (tree / ("d" * 120)).mkdir(parents=True)
    (tree / os.fsdecode(long_name)).write_bytes(b"long\n")
    (tree / os.fsdecode(LATIN1)).write_bytes(b"x\n")
    (project / "xarch.yaml").write_text(RECIPE + "  - src: tree\n    dst: /data\n")
    tag = unique_tag("xarch-names")
    made_images.append(tag)
    result = run_xarch("build", "-q", "-f", str(project / "xarch.yaml"), "--platform", "amd64",
                       "--load", tag, "-o", f"oci:{tmp_path / 'out'}", cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    container = docker_client.containers.create(tag, command=["/none"])
    try:
        exported = b"".join(container.export())
    finally:
        container.remove(force=True)
    with tarfile.open(fileobj=io.BytesIO(exported)) as archive:
        names = {os.fsencode(m.name) for m in archive}
    assert {b"data/" + long_name, b"data/" + LATIN1} <= names


def test_a_long_name_that_is_not_utf8_gets_pax_hdrcharset_binary(tmp_path: Path) -> None:
    tar = need_tool("tar")
    long_dir = "d" * 120
    name = os.fsdecode(b"%s/\xe9\xff-%s" % (long_dir.encode(), b"n" * 110))  # > ustar's 100 bytes
    link = os.fsdecode(b"\xfe" + b"t" * 120)
    entries = [Entry(long_dir, "dir", 0o755), Entry(name, "file", 0o644, data=b"data\n"),
               Entry(long_dir + "/link", "symlink", 0o777, linkname=link)]
    buffer = io.BytesIO()
    write_tar(entries, 1, buffer)
    layer = buffer.getvalue()
    assert layer.count(b"hdrcharset=BINARY") == 2  # the long name and the long link target
    assert b"path=" + os.fsencode(name) + b"\n" in layer
    (tmp_path / "layer.tar").write_bytes(layer)
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    # GNU tar 1.34 warns "Ignoring unknown extended header keyword 'hdrcharset'" and unpacks
    # the names byte-exact; Python's tarfile (which writes the same record) and Go's
    # archive/tar (Docker, containerd) read it.
    subprocess.run([tar, "-xf", str(tmp_path / "layer.tar"), "-C", str(unpacked)], check=True)
    inside = os.listdir(bytes(unpacked / long_dir))
    assert sorted(inside) == sorted([b"\xe9\xff-" + b"n" * 110, b"link"])
    assert os.readlink(bytes(unpacked / long_dir / "link")) == b"\xfe" + b"t" * 120
    with tarfile.open(fileobj=io.BytesIO(layer)) as archive:
        names = {os.fsencode(m.name): os.fsencode(m.linkname) for m in archive}
    assert names[os.fsencode(name)] == b""
    assert names[os.fsencode(long_dir + "/link")] == b"\xfe" + b"t" * 120
    # A UTF-8 name keeps the plain PAX header (and the digests of images made before).
    buffer = io.BytesIO()
    write_tar([Entry("é" * 80, "file", 0o644, data=b"")], 1, buffer)
    assert b"hdrcharset" not in buffer.getvalue()


# --- a full disk, a folder not writable ------------------------------------------------------


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 1 MiB tmpfs, mounted for this test (needs root: the CI machine runs tests as root)."""
    mount = need_tool("mount")
    need_root("mounting a tmpfs")
    where = Path(tempfile.mkdtemp(prefix="xarch-small-disk-"))
    subprocess.run([mount, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)
        where.rmdir()


@pytest.mark.parametrize("kind", ["oci", "oci-archive", "docker-archive"])
def test_a_full_output_disk_is_one_line_and_leaves_nothing(project: Path, small_disk: Path,
                                                           kind: str) -> None:
    # 3 MB of random bytes cannot be compressed below the 1 MiB the disk holds.
    (project / "big").write_bytes(os.urandom(3 * 1024 * 1024))
    (project / "xarch.yaml").write_text(RECIPE + "  - src: big\n    dst: /big\n")
    target = small_disk / "out"
    result = run_xarch("build", "-q", "-f", str(project / "xarch.yaml"), "--docker-platform", "amd64",
                       "-o", f"{kind}:{target}", cache=project / "cache")
    one_error_line(result, ExitCode.HOST, f"--output {kind}:{target}", "No space left on device")
    assert listing(small_disk) == []  # no staging folder, no half-written file


def test_an_output_folder_without_permission_is_one_line(project: Path) -> None:
    setpriv = need_tool("setpriv")
    need_root("to switch to the unprivileged account")
    # A world-readable copy of the project (pytest's tmp folders are root's alone), a cache
    # the account may write, and an output folder it may not.
    shared = Path(tempfile.mkdtemp(prefix="xarch-perm-"))
    try:
        shared.chmod(0o755)
        shutil.copytree(project, shared / "project")
        for path in [shared / "project", *(shared / "project").rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        (shared / "cache").mkdir(mode=0o777)
        (shared / "cache").chmod(0o777)
        locked = shared / "locked"
        locked.mkdir(mode=0o755)
        env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
        env.update(XARCH_CACHE=str(shared / "cache"), HOME=str(shared / "cache"),
                   PYTHONPATH=str(REPO))
        result = subprocess.run(
            # dac_read_search: the account may read the interpreter and its libpython wherever
            # they are installed (pyenv under /root, root's alone), and still write nothing of root's.
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=+dac_read_search",
             "--ambient-caps=+dac_read_search", sys.executable, "-m", "xarch.cli",
             "build", "-q", "-f", str(shared / "project" / "xarch.yaml"), "-o", f"oci:{locked / 'out'}"],
            capture_output=True, text=True, env=env, cwd=shared, timeout=300)
        one_error_line(result, ExitCode.INPUT, f"--output oci:{locked / 'out'}", "Permission denied")
        assert listing(locked) == []
    finally:
        shutil.rmtree(shared)


def _stage_writes_names(root: Path) -> None:
    """What a stage's step does: a real shell writes names that are not UTF-8 (sh's printf)."""
    sh = need_tool("sh")
    script = ('mkdir -p out && printf x > "out/$(printf "caf\\351")" && '
              'ln -s "$(printf "caf\\351")" "out/$(printf "l\\377")" && rm -f "gone-$(printf "\\376")"')
    subprocess.run([sh, "-c", script], cwd=root, check=True)


def test_names_a_stage_writes_that_are_not_utf8_reach_the_layer_byte_exact(tmp_path: Path) -> None:
    from xarch.oci.tree import Tree
    from xarch.run.rootfs import harvest

    root = tmp_path / "stage"
    root.mkdir()
    _stage_writes_names(root)
    tree = Tree()
    for entry in harvest(root, "/out", "/data", "copy[0]"):
        tree.add(entry)
    buffer = io.BytesIO()
    write_tar(list(tree), 1, buffer)
    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue())) as archive:
        names = {os.fsencode(m.name): os.fsencode(m.linkname) for m in archive}
    assert names == {b"data": b"", b"data/" + LATIN1.removesuffix(b".txt"): b"",
                     b"data/" + BROKEN_LINK: LATIN1.removesuffix(b".txt")}


def test_the_step_cache_keeps_names_that_are_not_utf8(tmp_path: Path) -> None:
    from xarch.run.cache import Snapshot, StepCache, folder_digest

    need_tool("tar")
    root = tmp_path / "root"
    root.mkdir()
    (root / os.fsdecode(b"gone-\xfe")).write_text("deleted by the step\n")
    before = Snapshot.of(root)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, symlinks=True)
    _stage_writes_names(root)
    cache = StepCache(tmp_path / "steps")
    cache.save("k", root, before, {"step": "printf"})
    cache.replay("k", copy)  # onto the root as it was before the step
    assert sorted(os.listdir(bytes(copy / "out"))) == sorted([b"caf\xe9", b"l\xff"])
    assert not (copy / os.fsdecode(b"gone-\xfe")).exists()
    assert folder_digest(copy) == folder_digest(root)


def test_a_full_cache_disk_is_one_line_naming_the_cache(project: Path, small_disk: Path,
                                                         tmp_path: Path) -> None:
    (project / "big").write_bytes(os.urandom(3 * 1024 * 1024))
    (project / "xarch.yaml").write_text(RECIPE + "  - src: big\n    dst: /big\n")
    out = tmp_path / "out"
    result = run_xarch("build", "-q", "-f", str(project / "xarch.yaml"), "-o", f"oci:{out}",
                       cache=small_disk / "cache")
    one_error_line(result, ExitCode.HOST, str(small_disk / "cache"), "No space left on device")
    assert not out.exists()
    # Whole entries may stay (each named by its content's sha256, or the recipe validated before
    # the disk filled, whole: xarch.recipecache); none half-written, no temporary.
    from xarch import recipecache
    from xarch.recipe import Recipe

    for entry in (small_disk / "cache").rglob("*"):
        if entry.is_file() and entry.name.startswith("recipe-"):
            assert recipecache.get(entry, Recipe) is not None, entry
        elif entry.is_file():
            assert hashlib.sha256(entry.read_bytes()).hexdigest() == entry.name, entry


# --- sources that are not files: nothing hangs -----------------------------------------------


@pytest.mark.parametrize("special", ["fifo", "socket"])
def test_a_source_that_is_a_fifo_or_socket_is_one_line_not_a_hang(project: Path, special: str) -> None:
    path = project / "special"
    if special == "fifo":
        os.mkfifo(path)
    else:
        import socket

        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))
    (project / "xarch.yaml").write_text(RECIPE + "  - src: special\n    dst: /special\n")
    result = run_xarch("build", "-q", "-f", str(project / "xarch.yaml"), "-o", f"oci:{project / 'out'}",
                       cache=project / "cache", timeout=60)
    one_error_line(result, ExitCode.INPUT, f"{project / 'xarch.yaml'}:7: files[1].src: special: ",
                   "not a regular file or folder")
    assert not (project / "out").exists()


@pytest.mark.parametrize("special", ["fifo", "socket"])
def test_a_fifo_or_socket_in_a_files_folder_is_one_line(project: Path, tmp_path: Path, special: str) -> None:
    """Found by the new-user attack: it was left out silently, so the image lacked a path the folder has."""
    (project / "sub").mkdir()
    if special == "fifo":
        os.mkfifo(project / "sub" / "pipe")
    else:
        import socket

        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(project / "sub" / "pipe"))
    (project / "xarch.yaml").write_text(RECIPE + "  - src: .\n    dst: /all\n")
    result = run_xarch("build", "-q", "-f", str(project / "xarch.yaml"), "-o", f"oci:{tmp_path / 'out'}",
                       cache=tmp_path / "cache", timeout=60)
    one_error_line(result, ExitCode.INPUT, f"{project / 'xarch.yaml'}:7: files[1].src: ",
                   f"./sub/pipe is a {'FIFO' if special == 'fifo' else 'socket'}; only files, folders")
    assert not (tmp_path / "out").exists()
    # Listed in .xarchignore, it is left out and the build goes on.
    (project / ".xarchignore").write_text("sub/pipe\n")
    result = run_xarch("build", "-q", "-f", str(project / "xarch.yaml"), "-o", f"oci:{tmp_path / 'out'}",
                       cache=tmp_path / "cache", timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_fifo_in_a_stage_source_is_left_out(project: Path, tmp_path: Path) -> None:
    from xarch.build.ignorefile import ignore_matcher, select

    os.mkfifo(project / "pipe")
    # A stage's /src is not image content; copytree would wait on the FIFO for a writer.
    assert select(project, project, ignore_matcher(project)) == ["motd", "xarch.yaml"]


def test_a_deb_with_a_name_that_is_not_utf8_installs_byte_exact(tmp_path: Path) -> None:
    from tests.support.aptrepo import raw_deb
    from xarch.oci.store import Store
    from xarch.oci.tree import Tree
    from xarch.sources.debian.install import install_packages
    from xarch.sources.debian.lock import LockedPackage

    name = os.fsdecode(b"./usr/share/demo/caf\xe9")
    deb = raw_deb(tmp_path / "demo.deb", "demo", [tarfile.TarInfo(name)], {name: b"x\n"})
    store = Store(tmp_path / "store")
    data = deb.read_bytes()
    sha = store.put_bytes(data)
    tree = Tree()
    install_packages(tree, [LockedPackage("demo", "1.0", "all", "pool/demo.deb", len(data), sha, "stable")],
                     store, 1)
    assert tree.get(os.fsdecode(b"usr/share/demo/caf\xe9")) is not None
    listing = tree.get("var/lib/dpkg/info/demo.list")
    assert listing is not None and b"/usr/share/demo/caf\xe9\n" in listing.read()
    buffer = io.BytesIO()
    write_tar(list(tree), 1, buffer)
    assert b"usr/share/demo/caf\xe9" in buffer.getvalue()


def test_a_lock_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    """Found by the new-user attack: a 0xff byte in xarch.lock was exit 70 (UnicodeDecodeError)."""
    project = tmp_path / "nginx"
    shutil.copytree(REPO / "examples" / "nginx", project)
    (project / "xarch.lock").write_bytes(b"inputs: {}\n\xff\n")
    out = tmp_path / "out"
    result = run_xarch("build", "-q", "-f", str(project / "xarch.yaml"), "--platform", "amd64",
                       "-o", f"oci:{out}", cache=tmp_path / "cache")
    one_error_line(result, ExitCode.INPUT, str(project / "xarch.lock"), "cannot read the lock")
    assert not out.exists()


def test_the_lock_of_a_recipe_folder_lives_in_that_folder(tmp_path: Path) -> None:
    """Found by the new-user attack: `xarch lock -f DIR` wrote DIR/../xarch.lock, another recipe's."""
    from xarch.sources.debian.locking import lock_path

    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "xarch.yaml").write_text("name: a\n")
    assert lock_path(folder) == folder.resolve() / "xarch.lock"
    assert lock_path(folder / "xarch.yaml") == folder.resolve() / "xarch.lock"


@pytest.mark.parametrize("target", ["/" + "n" * 300, "/proc/1/root/etc/hostname", "/etc/shadow"])
def test_a_stage_symlink_is_taken_as_a_link_never_followed_on_the_host(tmp_path: Path, target: str) -> None:
    """Found by the new-user attack: `copy: {from: build:/out/hn}` with /out/hn -> /proc/1/root/…
    stat()ed the host's path (EACCES: exit 2 naming a temporary folder). Links of a stage root
    are the stage's: lstat only. A 300-byte name makes stat() fail on any host (ENAMETOOLONG)."""
    from xarch.run.rootfs import harvest

    root = tmp_path / "stage"
    (root / "out").mkdir(parents=True)
    (root / "out" / "hn").symlink_to(target)
    (entry,) = harvest(root, "/out/hn", "/x", "copy[0]")
    assert (entry.path, entry.type, entry.linkname) == ("x", "symlink", target)


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_a_lock_that_is_not_a_regular_file_is_one_line(project: Path, tmp_path: Path, kind: str) -> None:
    """Found by the new-user attack: xarch.lock linked to /dev/zero was read until the kernel killed
    xarch (exit 137); a FIFO would block forever. Every file a user hands in is read by xarch.smallfile."""
    lock = project / "xarch.lock"
    if kind == "fifo":
        os.mkfifo(lock)
    else:
        lock.symlink_to("/dev/zero")
    recipe = project / "xarch.yaml"
    recipe.write_text(RECIPE + "sources:\n  debian:\n    suites: [bookworm]\npackages: [hello]\n")
    result = run_xarch("build", "-q", "-f", str(recipe), "-o", f"oci:{tmp_path / 'out'}", "--locked",
                       cache=tmp_path / "cache", timeout=60)
    one_error_line(result, ExitCode.INPUT, f"{lock}: ", "not a regular file")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [["inspect", "{layout}"], ["inspect", "--json", "{layout}"],
                                  ["diff", "-q", "{layout}", "{layout}"]], ids=["table", "json", "diff"])
def test_a_full_stdout_is_one_line_naming_stdout(images: Path, args: list[str]) -> None:
    """`xarch inspect > /dev/full`: a write error names no file, so without care the line would say
    only "No space left on device" (or Python's flush at exit would print a traceback, exit 120)."""
    command = [sys.executable, "-m", "xarch.cli", *(a.format(layout=images / "layout") for a in args)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open("/dev/full", "w") as full:
        result = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, env=env, check=False)
    one_error_line(result, ExitCode.HOST, "stdout: No space left on device")


@pytest.mark.parametrize("args", [["--help"], ["inspect", "--json", "{layout}"],
                                  ["diff", "-q", "{layout}", "{layout}"]], ids=["help", "inspect", "diff"])
def test_a_closed_stdout_is_one_line_exit_2(images: Path, args: list[str]) -> None:
    """`xarch inspect >&-`: Python starts with sys.stdout None; the result cannot be printed."""
    command = [sys.executable, "-m", "xarch.cli", *(a.format(layout=images / "layout") for a in args)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                            check=False, preexec_fn=lambda: os.close(1))
    one_error_line(result, ExitCode.INPUT, "stdout: Bad file descriptor")


@pytest.mark.parametrize("args", [["inspect", "--files", "--platform", "amd64", "{layout}"],
                                  ["diff", "-q", "{layout}", "{layout}"]], ids=["inspect", "diff"])
def test_a_reader_that_goes_away_ends_as_sigpipe_not_a_verdict(images: Path, args: list[str]) -> None:
    """`xarch inspect … | head -1`: 141 as a shell reports SIGPIPE, silently; rich's own handler
    exited 1, which is the code of a negative verdict."""
    command = [sys.executable, "-m", "xarch.cli", *(a.format(layout=images / "layout") for a in args)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the command prints anything: its first write meets a closed pipe
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, stderr
    assert "Traceback" not in stderr and "error" not in stderr, stderr
