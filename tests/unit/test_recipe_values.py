"""Values the layer format or the runtimes cannot hold are recipe errors, one line with file,
line and field (issue 11, kind 2), and trees that would not unpack are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.e2e import EPOCH, error_lines, image_files, xarch, xarch_ok
from xarch.errors import RecipeError
from xarch.recipe import MAX_ID, load

HEAD = "name: a\nplatforms: [amd64]\n"


def _error(tmp_path: Path, body: str) -> str:
    recipe = tmp_path / "xarch.yaml"
    recipe.write_text(HEAD + body)
    (tmp_path / "x").write_text("x\n")
    with pytest.raises(RecipeError) as caught:
        load(recipe)
    message = str(caught.value)
    assert "\n" not in message
    return message.removeprefix(f"{recipe}:")


def _build_error(recipe: Path, tmp_path: Path) -> str:
    """The one error line of `xarch build RECIPE` (exit 2, nothing written)."""
    out = tmp_path / "out"
    result = xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{out}", cache=tmp_path / "cache")
    assert result.returncode == 2, result.stderr
    lines = error_lines(result)
    assert len(lines) == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert not out.exists()
    return lines[0]


def _loads(tmp_path: Path, body: str) -> None:
    recipe = tmp_path / "xarch.yaml"
    recipe.write_text(HEAD + body)
    load(recipe)


FILE = "files:\n  - src: x\n    dst: /x\n"

BAD = [
    # owner: ids are Linux's 32-bit uid_t/gid_t, minus (uid_t)-1
    (FILE + '    owner: "18446744073709551616:0"\n', "6: files[0].owner: ", "out of range"),
    (FILE + f'    owner: "0:{MAX_ID + 1}"\n', "6: files[0].owner: ", "out of range"),
    (FILE + f"    owner: {MAX_ID + 1}\n", "6: files[0].owner: ", "out of range"),
    (FILE + "    owner: true\n", "6: files[0].owner: ", "UID:GID"),
    ('directories:\n  - {path: /d, owner: "99999999999"}\n', "4: directories[0].owner: ", "out of range"),
    ('copy:\n  - {from: "s:/a", dst: /a, owner: "4294967295:0"}\n', "4: copy[0].owner: ", "out of range"),
    # paths that are the root itself, climb out, or hold a NUL
    ("directories:\n  - {path: /}\n", "4: directories[0].path: ", "image root"),
    ("symlinks:\n  - {path: /., target: x}\n", "4: symlinks[0].path: ", "image root"),
    ('copy:\n  - {from: "s:/a/../../etc", dst: /x}\n', "4: copy[0].from: ", "'..'"),
    ('files:\n  - src: x\n    dst: "/a\\0b"\n', "5: files[0].dst: ", "NUL"),
    ('files:\n  - src: "x\\0"\n    dst: /x\n', "4: files[0].src: ", "NUL"),
    ('symlinks:\n  - {path: /l, target: ""}\n', "4: symlinks[0].target: ", ""),
    ('symlinks:\n  - {path: /l, target: "a\\0"}\n', "4: symlinks[0].target: ", "NUL"),
    (f"symlinks:\n  - {{path: /l, target: {'a' * 4096}}}\n", "4: symlinks[0].target: ", "4095"),
    (f"files:\n  - src: x\n    dst: /{'n' * 256}\n", "5: files[0].dst: ", "NAME_MAX"),
    (f"files:\n  - src: x\n    dst: /{'d/' * 2048}x\n", "5: files[0].dst: ", "PATH_MAX"),
    # the runtime config
    ("config:\n  stop_signal: SIGNOPE\n", "4: config.stop_signal: ", "not a signal"),
    ("config:\n  stop_signal: 0\n", "4: config.stop_signal: ", "1..64"),
    ("config:\n  stop_signal: 65\n", "4: config.stop_signal: ", "1..64"),
    ("config:\n  stop_signal: SIGRTMIN+31\n", "4: config.stop_signal: ", "not a signal"),
    # Numbers are ASCII digits only: int() and \d also take "٣" or "３", which no runtime reads
    (FILE + '    owner: "\u0663:0"\n', "6: files[0].owner: ", "UID:GID"),
    ('config:\n  stop_signal: "\u0661\u0665"\n', "4: config.stop_signal: ", "not a signal"),
    ('config:\n  exposed_ports: ["\uff18\uff10"]\n', "4: config.exposed_ports: ", ""),
    ("config:\n  exposed_ports: [0]\n", "4: config.exposed_ports: ", "1..65535"),
    ("config:\n  exposed_ports: [65536/udp]\n", "4: config.exposed_ports: ", "1..65535"),
    ("config:\n  env:\n    A=B: c\n", "5: config.env.A=B: ", "'='"),
    ('config:\n  env:\n    "": c\n', '5: config.env[""]: ', "empty"),
    ('config:\n  env:\n    A: "b\\0"\n', "5: config.env.A: ", "NUL"),
    ('config:\n  entrypoint: ["/a\\0"]\n', "4: config.entrypoint[0]: ", "NUL"),
    ("config:\n  workdir: srv\n", "4: config.workdir: ", "absolute"),
    ("config:\n  volumes: [data]\n", "4: config.volumes[0]: ", "absolute"),
    ("config:\n  volumes: [/data, /]\n", "4: config.volumes[1]: ", "image root"),
    ('config:\n  user: "a b"\n', "4: config.user: ", "USER"),
    ('config:\n  user: "1:2:3"\n', "4: config.user: ", "USER"),
    ('config:\n  user: "0:4294967295"\n', "4: config.user: ", "out of range"),
    ('config:\n  labels: {"": v}\n', '4: config.labels[""]: ', "empty"),
    ('annotations:\n  index: {"a\\nb": v}\n', '4: annotations.index["a\\nb"]: ', "control character"),
    ('annotations:\n  manifest: {k: "v\\0"}\n', "4: annotations.manifest.k: ", "NUL"),
    ("epoch: 8589934592\n", "3: epoch: ", "8589934591"),  # past ustar's mtime field
    ("epoch: true\n", "3: epoch: ", "valid integer"),
    ('epoch: "12"\n', "3: epoch: ", "valid integer"),
    ("compression: {level: true}\n", "3: compression.level: ", "valid integer"),
    ("accounts:\n  users: [{name: u, uid: true}]\n", "4: accounts.users[0].uid: ", "valid integer"),
    # accounts: what /etc/passwd and /etc/group can hold
    ("accounts:\n  users: [{name: Bad Name, uid: 1}]\n", "4: accounts.users[0].name: ",
     "not an account name"),
    ("accounts:\n  users: [{name: u, uid: 2147483648}]\n", "4: accounts.users[0].uid: ", "2147483647"),
    ("accounts:\n  users: [{name: u, uid: 1, home: /a:b}]\n", "4: accounts.users[0].home: ", "':'"),
    ("accounts:\n  groups:\n    - {name: g, gid: 1, members: [x y]}\n", "5: accounts.groups[0].members[0]: ",
     "not an account name"),
]


@pytest.mark.parametrize(("body", "where", "says"), BAD)
def test_values_that_break_images_are_one_line_errors(tmp_path: Path, body: str, where: str,
                                                      says: str) -> None:
    message = _error(tmp_path, body)
    assert message.startswith(where), message
    assert says in message, message


@pytest.mark.parametrize("body", [
    FILE + f'    owner: "{MAX_ID}:{MAX_ID}"\n',
    f"files:\n  - src: x\n    dst: /{'n' * 255}\n",
    "config:\n  stop_signal: SIGTERM\n",
    "config:\n  stop_signal: term\n",
    "config:\n  stop_signal: SIGRTMIN+3\n",
    "config:\n  stop_signal: RTMAX-2\n",
    "config:\n  stop_signal: 15\n",
    "config:\n  stop_signal: SIGWINCH\n",
    "config:\n  exposed_ports: [1, 65535/sctp]\n",
    'config:\n  user: "nginx:www-data"\n',
    "config:\n  env: {PATH: /bin, EMPTY: ''}\n",
    "epoch: 8589934591\n",
])
def test_values_at_the_limits_load(tmp_path: Path, body: str) -> None:
    _loads(tmp_path, body)


# --- trees that would not unpack ----------------------------------------------------------------

@pytest.mark.parametrize(("items", "where", "below"), [
    # a file below a symlink of the image
    ("symlinks:\n  - {path: /a, target: b}\nfiles:\n  - {src: x, dst: /a/x}\n", ":11: files[0]: ",
     "/a/x is below /a, which is a symlink to b (from symlinks[0])"),
    # a file below a symlink loop
    ("symlinks:\n  - {path: /l1, target: l2}\n  - {path: /l2, target: l1}\n"
     "files:\n  - {src: x, dst: /l1/x}\n",
     ":12: files[0]: ", "/l1/x is below /l1, which is a symlink to l2"),
    # a folder below a file
    ("files:\n  - {src: x, dst: /f}\ndirectories:\n  - {path: /f/d}\n", ":11: directories[0]: ",
     "/f/d is below /f, which is a file (from files[0])"),
])
def test_an_entry_below_a_symlink_or_file_is_one_line(tmp_path: Path, items: str, where: str,
                                                      below: str) -> None:
    (tmp_path / "x").write_text("x\n")
    recipe = tmp_path / "xarch.yaml"
    recipe.write_text(f"name: a\nplatforms: [amd64]\nepoch: {EPOCH}\n" + "\n" * 4 + items)
    line = _build_error(recipe, tmp_path)
    assert line.startswith(f"xarch: error: {recipe}{where}") and below in line, line


# --- errors with a location (issue 11, kind 3) ----------------------------------------------------

@pytest.mark.parametrize(("raw", "where", "says"), [
    (b'name: a\nplatforms: [amd64]\nconfig:\n  cmd: ["a\x00b"]\n', ":4:11: ", "U+0000"),
    (b"name: a\nplatforms: [amd64]\n\x00\n", ":3:1: ", "U+0000"),
    (b"name: a\nplatforms: [amd64]\nconfig:\n  cmd: [\x07]\n", ":4:9: ", "U+0007"),
    (b"name: a\nplatforms: [amd64]\ntag: \x1b[1m\n", ":3:6: ", "U+001B"),
    (b"name: a\nplatforms: [amd64]\ntag: \x7f\n", ":3:6: ", "U+007F"),
    (b"name: a\nplatforms: [amd64]\ntag: x\xffy\n", ":3:7: ", "not UTF-8: byte 0xff"),
    (b"name: a\nplatforms: [amd64]\n  x: [\n", ":3:3: ", "invalid YAML"),
    (b"name: a\nplatforms: [amd64]\nfiles: [{src: bin/{arch}/x, dst: /x}]\n", ":3:19: ",
     'quote a value that holds {placeholders} ("bin/{arch}/x")'),
])
def test_characters_yaml_refuses_are_one_line_with_line_and_column(tmp_path: Path, raw: bytes, where: str,
                                                                    says: str) -> None:
    recipe = tmp_path / "xarch.yaml"
    recipe.write_bytes(raw)
    line = _build_error(recipe, tmp_path)
    assert line.startswith(f"xarch: error: {recipe}{where}") and says in line, line


@pytest.mark.parametrize(("accounts", "where", "says"), [
    ("  users: [{name: web, uid: 101, gid: 555}]\n", ":5: accounts.users[0].gid: ", "which no group has"),
    ("  users: [{name: web, uid: 101}]\n", ":5: accounts.users[0].uid: ", "gid 101, which no group has"),
    ("  groups:\n    - {name: a, gid: 7}\n    - {name: b, gid: 7}\n", ":7: accounts.groups[1].gid: ",
     "id 7 of b is taken by a"),
    ("  users: [{name: root, uid: 5, gid: 0}]\n", ":5: accounts.users[0].name: ", "root already exists"),
    ("  users: [{name: u, uid: 0, gid: 0}]\n", ":5: accounts.users[0].uid: ", "taken by root"),
    ("  users: [{name: u, uid: -1}]\n", ":5: accounts.users[0].uid: ", "greater than or equal to 0"),
])
def test_accounts_errors_name_file_line_and_field(tmp_path: Path, accounts: str, where: str,
                                                  says: str) -> None:
    recipe = tmp_path / "xarch.yaml"
    recipe.write_text(f"name: a\nplatforms: [amd64]\nepoch: {EPOCH}\naccounts:\n{accounts}")
    line = _build_error(recipe, tmp_path)
    assert line.startswith(f"xarch: error: {recipe}{where}") and says in line, line


@pytest.mark.parametrize(("body", "where", "says"), [
    ('stages:\n  s:\n    steps:\n      - run: "echo \\0"\n', "6: stages.s.steps[0].run: ", "NUL"),
    ("stages:\n  s:\n    dockerfile: D\n    build_args: {A=B: c}\n", "6: stages.s.build_args.A=B: ", "'='"),
    ("files:\n  - {src: x, dst: /a/b}\n  - {src: x, dst: /a/./b}\n", "5: files[1].dst: ",
     "duplicate path /a/b"),
])
def test_the_same_gaps_elsewhere_in_the_recipe(tmp_path: Path, body: str, where: str, says: str) -> None:
    message = _error(tmp_path, body)
    assert message.startswith(where) and says in message, message


@pytest.mark.parametrize("dst", ["/", "/./", "//"])
def test_a_file_as_the_image_root_is_one_line(tmp_path: Path, dst: str) -> None:
    (tmp_path / "x").write_text("x\n")
    recipe = tmp_path / "xarch.yaml"
    recipe.write_text(f"name: a\nplatforms: [amd64]\nepoch: {EPOCH}\nfiles:\n  - src: x\n    dst: {dst}\n")
    line = _build_error(recipe, tmp_path)
    assert line == (f"xarch: error: {recipe}:6: files[0].dst: x is a file; only a folder can be copied "
                    "as the image root /")


def test_a_file_copied_from_a_stage_as_the_image_root_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("x\n")
    recipe = tmp_path / "xarch.yaml"
    recipe.write_text(f"name: a\nplatforms: [amd64]\nepoch: {EPOCH}\nstages:\n  s:\n"
                      "    files: [{src: x, dst: /x}]\ncopy:\n  - {from: 's:/x', dst: /}\n")
    line = _build_error(recipe, tmp_path)
    assert line == (f"xarch: error: {recipe}:8: copy[0].dst: s:/x is a file; only a folder can be copied "
                    "as the image root /")


def test_a_folder_may_be_the_image_root(tmp_path: Path) -> None:
    (tmp_path / "root" / "etc").mkdir(parents=True)
    (tmp_path / "root" / "etc" / "motd").write_text("hi\n")
    recipe = tmp_path / "xarch.yaml"
    recipe.write_text(f"name: a\nplatforms: [amd64]\nepoch: {EPOCH}\nfiles:\n  - src: root\n    dst: /\n")
    out = tmp_path / "out"
    xarch_ok("build", "-f", str(recipe), "-q", "-o", f"oci:{out}", cache=tmp_path / "cache")
    assert image_files(out, "amd64")["etc/motd"].data == b"hi\n"


def test_a_hard_link_must_name_a_file_of_the_image(tmp_path: Path) -> None:
    from xarch.build.treecheck import BrokenTree, check_extractable
    from xarch.oci.tree import Entry, Tree

    recipe = tmp_path / "xarch.yaml"
    recipe.write_text(HEAD)
    loaded = load(recipe)
    tree = Tree()
    tree.add(Entry("usr/bin/a", "file", 0o755, data=b"a"))
    tree.add(Entry("usr/bin/b", "hardlink", 0o755, linkname="usr/bin/a", origin="package p 1 (amd64)"))
    check_extractable(loaded, tree)
    tree.add(Entry("usr/bin/a", "dir", 0o755))  # a later part replaced the file with a folder
    with pytest.raises(BrokenTree) as caught:
        check_extractable(loaded, tree)
    # No `packages:` in this recipe: the line is the nearest, the first.
    assert str(caught.value) == (f"{recipe}:1: packages: package p 1 (amd64): /usr/bin/b is a hard link to "
                                 "/usr/bin/a, which is a dir in the image")
