"""/etc/shadow and system accounts as Debian's passwd and adduser make them
(xarch/sources/debian/accounts.py), and the registry's WWW-Authenticate challenge and Docker config
credentials (xarch/registry/auth.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.support.trees import entry_at
from xarch.oci.tree import Entry, Tree
from xarch.registry.auth import ANONYMOUS, docker_config_credentials, parse_challenge
from xarch.registry.dockerconfig import config_candidates, find_config_file
from xarch.sources.debian.accounts import AccountCallError, add_system_account, shadow_files

EPOCH = 1_700_000_000  # day 19675


def tree_with(files: dict[str, str]) -> Tree:
    tree = Tree()
    for path, text in files.items():
        tree.add_parents(path)
        tree.add(Entry(path, "file", 0o644, data=text.encode()))
    return tree


def test_shadow_files_move_the_passwords_out_of_passwd() -> None:
    tree = tree_with({"etc/passwd": "root:*:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/usr/sbin/nologin\n",
                      "etc/group": "root:*:0:\nadm:x:4:daemon\n"})
    shadow_files(tree, EPOCH)
    assert entry_at(tree, "etc/passwd").read() == (
        b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/usr/sbin/nologin\n")
    assert entry_at(tree, "etc/shadow").read() == b"root:*:19675:0:99999:7:::\ndaemon:*:19675:0:99999:7:::\n"
    assert entry_at(tree, "etc/group").read() == b"root:x:0:\nadm:x:4:daemon\nshadow:x:42:\n"
    assert entry_at(tree, "etc/gshadow").read() == b"root:*::\nadm:*::daemon\nshadow:*::\n"
    shadow = entry_at(tree, "etc/shadow")
    assert (shadow.mode, shadow.uid, shadow.gid) == (0o640, 0, 42)


def test_a_system_user_gets_the_first_free_id_and_its_own_group() -> None:
    tree = tree_with({"etc/passwd": "root:x:0:0::/root:/bin/sh\nfirst:x:100:65534::/:/bin/false\n",
                      "etc/group": "root:x:0:\nnogroup:x:65534:\n"})
    add_system_account(tree, ("adduser", "--system", "--group", "--home", "/var/lib/app", "app"), EPOCH)
    passwd = entry_at(tree, "etc/passwd").read().decode().splitlines()
    assert passwd[-1] == "app:x:101:101::/var/lib/app:/usr/sbin/nologin"
    assert entry_at(tree, "etc/group").read().decode().splitlines()[-1] == "app:x:101:"
    home = entry_at(tree, "var/lib/app")
    assert (home.type, home.uid, home.gid, home.mode) == ("dir", 101, 101, 0o755)
    before = entry_at(tree, "etc/passwd").read()
    add_system_account(tree, ("adduser", "--system", "app"), EPOCH)  # already there: left alone
    assert entry_at(tree, "etc/passwd").read() == before


def test_challenges_are_parsed() -> None:
    header = 'Bearer realm="https://auth.example/token",service="r.example",scope="repository:a:pull"'
    expected = {"realm": "https://auth.example/token", "service": "r.example", "scope": "repository:a:pull"}
    assert parse_challenge(header) == ("bearer", expected)
    assert parse_challenge('Basic realm="Registry"') == ("basic", {"realm": "Registry"})


def test_credentials_come_from_the_docker_config(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    auth = base64.b64encode(b"me:s3cret").decode()
    config.write_text(json.dumps({"auths": {"r.example": {"auth": auth}}}))
    found = docker_config_credentials("r.example", str(config))
    assert (found.username, found.password) == ("me", "s3cret")
    assert docker_config_credentials("other.example", str(config)) == ANONYMOUS
    assert docker_config_credentials("r.example", str(tmp_path / "none.json")) == ANONYMOUS


@pytest.mark.parametrize("words", [("adduser", "--system", "--frobnicate", "app"),
                                   ("adduser", "app", "extra")])
def test_another_adduser_shape_is_refused(words: tuple[str, ...]) -> None:
    with pytest.raises(AccountCallError):
        add_system_account(tree_with({"etc/passwd": "", "etc/group": ""}), words, EPOCH)


def test_the_docker_config_is_found_where_the_docker_sdk_looks(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # xarch looks for the file itself (no SDK import when there is none): same order as the SDK's.
    from docker.utils.config import find_config_file as sdk_find

    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    monkeypatch.setenv("HOME", str(home))
    given = tmp_path / "given.json"
    files = [home / ".dockercfg", home / ".docker" / "config.json", elsewhere / "config.json", given]
    for environment in (None, str(elsewhere)):
        if environment is None:
            monkeypatch.delenv("DOCKER_CONFIG", raising=False)
        else:
            monkeypatch.setenv("DOCKER_CONFIG", environment)
        for made in range(len(files) + 1):
            for path in files:
                path.unlink(missing_ok=True)
            for path in files[:made]:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("{}")
            for config_path in (None, str(given)):
                found = find_config_file(config_path)
                assert found == sdk_find(config_path), (environment, made, config_path)
                # every place the SDK may take a file from is one a push record checks
                assert found is None or found in config_candidates(config_path)
    for path in files:
        path.unlink(missing_ok=True)
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    assert find_config_file() is None
    assert docker_config_credentials("registry.example") == ANONYMOUS
