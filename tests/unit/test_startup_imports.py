"""Start-up cost (issue 14): what the hot paths of the command line import.

Most of a cached `xarch build` was importing modules it never used (the docker SDK and requests,
elftools, python-debian, the package installer, rich's progress bars …). These tests run the
real command in a fresh interpreter and look at sys.modules afterwards, so a module-level import
that brings one of them back fails here instead of slowly costing every build again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from xarch import platforms as platform_data
from xarch.yamlpos import load as load_positions

REPO = Path(__file__).resolve().parents[2]

# Modules an image-cache hit must not load: each is needed only to talk to a registry or dockerd,
# to check ELF files, to read Debian metadata or Python requirements, or to draw progress bars.
NOT_ON_A_CACHED_BUILD = (
    "docker",
    "requests",
    "urllib3",
    "ssl",
    "elftools",
    # The host's apt sources (python-debian's deb822 reader) are read only for a URL to download from.
    "debian.deb822",
    "packaging",
    "rich.progress",
    "xarch.build.elfcheck",
    "xarch.build.layering",
    "xarch.sources.debian.install",
    "xarch.sources.debian.deb",
    "xarch.registry.auth",
    "xarch.registry.client",
    "xarch.sbom.attach",
    "xarch.build.python",
    "xarch.build.stages",
)

# Runs the command line in this interpreter, then writes the names of every loaded module.
RUN_AND_LIST = """
import json, sys
from xarch.cli.group import cli
from xarch.cli.main import run
code = 0
try:
    run(cli, sys.argv[2:])
except SystemExit as exit_:
    code = exit_.code
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def modules_after(tmp_path: Path, *args: str, cache: Path) -> set[str]:
    """The modules loaded by `xarch ARGS` in a fresh interpreter (asserting it succeeded)."""
    listing = tmp_path / "modules.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "XARCH_CACHE": str(cache)}
    result = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST, str(listing), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(listing.read_text())
    assert found["code"] in (0, None), result.stderr
    return set(found["modules"])


def write_recipe(folder: Path) -> Path:
    """A recipe without packages (no network, no lock) that still reads the host's apt sources
    (sources.debian without a mirror), copies a file and a folder, and makes a folder."""
    (folder / "site").mkdir(parents=True)
    (folder / "site" / "index.html").write_text("<p>hello</p>\n")
    (folder / "app.conf").write_text("listen 8080;\n")
    recipe = folder / "xarch.yaml"
    recipe.write_text(
        "name: startup\nplatforms: [amd64, arm64]\nepoch: 1700000000\n"
        "sources:\n  debian:\n    suites: [bookworm]\n"
        "files:\n  - {src: app.conf, dst: /etc/app.conf}\n  - {src: site, dst: /srv/www}\n"
        'directories:\n  - {path: /tmp, mode: "1777"}\n'
        "config:\n  entrypoint: [/bin/app]\n"
    )
    return recipe


def test_a_cached_build_loads_none_of_the_heavy_modules(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "recipe")
    cache = tmp_path / "cache"
    args = ("build", "-q", "-f", str(recipe), "-o")
    first = modules_after(tmp_path, *args, f"oci:{tmp_path / 'one'}", cache=cache)
    # The first build misses the image cache: it really checks ELF files and writes layers, so
    # the listing does see modules of the build path (this test can fail).
    assert {"xarch.build.elfcheck", "xarch.build.layering", "elftools"} <= first
    unused = {"docker", "requests", "xarch.sources.debian.install"}
    assert sorted(first & unused) == []
    second = modules_after(tmp_path, *args, f"oci:{tmp_path / 'two'}", cache=cache)
    assert "xarch.build.imagecache" in second
    assert sorted(set(NOT_ON_A_CACHED_BUILD) & second) == []
    assert (tmp_path / "one" / "index.json").read_bytes() == (tmp_path / "two" / "index.json").read_bytes()


def test_listing_the_commands_or_loading_build_loads_no_recipe(tmp_path: Path) -> None:
    code = (
        "import json, sys; from xarch.cli.group import cli; import click; "
        "cli.get_command(click.Context(cli), 'build'); print(json.dumps(sorted(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(json.loads(result.stdout))
    assert "xarch.cli.build" in loaded
    heavy = {"pydantic", "xarch.recipe", "xarch.build.pipeline", "docker", "rich.progress"}
    assert sorted(loaded & heavy) == []


def test_the_push_command_loads_no_docker_sdk_or_rich(tmp_path: Path) -> None:
    # A re-push is start-up and two HEADs: its command, the layout's documents and the Docker
    # config lookup (none here) must not bring the docker SDK or rich back (pydantic checks the
    # documents: one validator, the library's).
    code = (
        "import json, sys; from xarch.cli.group import cli; import click; "
        "cli.get_command(click.Context(cli), 'push'); "
        "from xarch.registry.auth import docker_config_credentials as c; c('127.0.0.1:5000'); "
        "from xarch.oci.schema import parse_document as p; "
        f"p({json.dumps(json.dumps(GOOD['manifest']))}.encode(), 'x', 'image'); "
        "print(json.dumps(sorted(sys.modules)))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}
    env.pop("DOCKER_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(result.stdout))
    assert {"xarch.cli.push", "xarch.registry.push", "requests"} <= loaded
    assert sorted(loaded & {"docker", "rich", "rich.console", "yaml"}) == []


def test_libyaml_and_pure_python_read_every_platform_file_alike() -> None:
    # platforms.all_platforms reads the shipped files with libyaml's loader when PyYAML has it.
    for path in sorted(platform_data.data_dir().glob("*.yaml")):
        text = path.read_text()
        assert yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) == yaml.safe_load(text)  # noqa: S506


def test_the_recipe_data_is_what_safe_load_gives(tmp_path: Path) -> None:
    # yamlpos builds the data from the node tree it composed for line numbers (one parse); a
    # document with a << merge key is parsed again (the constructor flattens merges in place).
    texts = [
        "name: a\nlist: [1, 2.5, true, null, '0755', 0755, 2024-01-01]\nnested: {x: [a, {y: z}]}\n",
        "base: &b {mode: '0644', owner: '0:0'}\nfiles:\n  - {<<: *b, src: a, dst: /a}\n  - *b\n",
        "",
        "just a string\n",
    ]
    for number, text in enumerate(texts):
        path = tmp_path / f"{number}.yaml"
        path.write_text(text)
        positions = load_positions(path)
        assert positions.data == yaml.safe_load(text)
    merged = load_positions(tmp_path / "1.yaml")
    assert merged.line_of(("files", 0, "src")) == 3


_DIGEST = "sha256:" + "ab" * 32
_DESCRIPTOR = {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": _DIGEST,
    "size": 7,
    "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
    "annotations": {"org.opencontainers.image.ref.name": "1.0"},
}
GOOD = {
    "index": {"schemaVersion": 2, "manifests": [_DESCRIPTOR, {**_DESCRIPTOR, "platform": None}]},
    "manifest": {"schemaVersion": 2, "config": {**_DESCRIPTOR, "size": 0}, "layers": [_DESCRIPTOR]},
    "config": {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [_DIGEST]},
        "history": [{"created_by": "xarch"}],
        "config": {"Env": ["A=b"]},
    },
    "docker-manifest": [
        {"Config": "c.json", "Layers": ["l.tar"], "RepoTags": ["a:b"]},
        {"Config": "d", "Layers": []},
    ],
}
