"""A file name that is not UTF-8 survives `--json`: `inspect --files --json` and `diff --json` give
it as readable text (U+FFFD for each bad byte) and its exact bytes under `<key>_base64`, and jq
(a real consumer) reads both. Before, the name went out as a lone surrogate ("\\udcff"): not
Unicode, so jq lost the byte."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

from tests.support.e2e import xarch, xarch_ok
from tests.support.needs import need_tool

NAME = b"caf\xe9.txt"  # Latin-1, not UTF-8


def build(folder: Path, content: str, out: Path, cache: Path) -> None:
    (folder / "site").mkdir(parents=True, exist_ok=True)
    (folder / "site" / os.fsdecode(NAME)).write_text(content)
    (folder / "xarch.yaml").write_text("name: names\nplatforms: [amd64]\nepoch: 1\n"
                                       "files:\n  - {src: site, dst: /srv}\n")
    xarch_ok("build", "-f", str(folder / "xarch.yaml"), "--no-cache", "-o", f"oci:{out}", cache=cache)


def test_names_that_are_not_utf8_keep_their_bytes(tmp_path: Path) -> None:
    jq = need_tool("jq")
    build(tmp_path / "a", "one\n", tmp_path / "out-a", tmp_path / "cache")
    build(tmp_path / "b", "two\n", tmp_path / "out-b", tmp_path / "cache")
    cache = tmp_path / "cache"
    text = xarch_ok("inspect", str(tmp_path / "out-a"), "--files", cache=cache).stdout
    assert "/srv/caf\\xe9.txt" in text and "\\udc" not in text  # the byte, as a terminal user says it
    listing = xarch_ok("inspect", str(tmp_path / "out-a"), "--files", "--json", cache=cache).stdout
    assert "\\udc" not in listing
    (entry,) = [f for f in json.loads(listing)["files"] if "path_base64" in f]
    assert entry["path"] == "/srv/caf\ufffd.txt"
    assert base64.b64decode(entry["path_base64"]) == b"/srv/" + NAME
    through_jq = subprocess.run([jq, "-r", '.files[] | select(.path_base64) | .path_base64'], input=listing,
                                capture_output=True, text=True, check=True).stdout.strip()
    assert base64.b64decode(through_jq) == b"/srv/" + NAME
    diff = xarch("diff", str(tmp_path / "out-a"), str(tmp_path / "out-b"), "--json", cache=tmp_path / "cache")
    assert diff.returncode == 1, diff.stderr
    assert "\\udc" not in diff.stdout
    (changed,) = [d for d in json.loads(diff.stdout)["differences"] if "item_base64" in d]
    assert base64.b64decode(changed["item_base64"]).endswith(NAME) and "\ufffd" in changed["item"]
