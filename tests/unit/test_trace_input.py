"""xarch.trace and trace: settings are hostile input: every bad one is a one-line error, exit 2.

The record comes with the recipe (a cloned repository), so it may be anything: a link to a
device, a FIFO, a huge file, YAML of the wrong shape. Nothing here needs strace or a sandbox.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from xarch.errors import ExitCode
from xarch.trace import record
from xarch.trace.record import TraceFileError


def _load_error(path: Path) -> str:
    with pytest.raises(TraceFileError) as caught:
        record.load(path)
    assert caught.value.exit_code == ExitCode.INPUT
    message = str(caught.value)
    assert "\n" not in message and str(path) in message, message
    return message


def test_a_record_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    # /dev/zero would be read until memory runs out; a FIFO would block the build forever.
    zero = tmp_path / "zero" / record.FILE_NAME
    zero.parent.mkdir()
    zero.symlink_to("/dev/zero")
    fifo = tmp_path / "fifo" / record.FILE_NAME
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    folder = tmp_path / "folder" / record.FILE_NAME
    folder.mkdir(parents=True)
    for path in (zero, fifo, folder):
        result: list[str] = []
        worker = threading.Thread(target=lambda p=path, out=result: out.append(_load_error(p)), daemon=True)
        worker.start()
        worker.join(timeout=10)
        assert result, f"reading {path} did not return"
        assert "not a regular file" in result[0] or "is a folder" in result[0], result[0]


def test_a_huge_record_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record, "MAX_BYTES", 1000)
    path = tmp_path / record.FILE_NAME
    path.write_text("version: 1\nplatforms:\n  amd64:\n" + "  - /usr/bin/x\n" * 100)
    assert "more than" in _load_error(path)
    # A link to a regular file is read as the file (a record may be shared between recipes).
    small = tmp_path / "small.trace"
    small.write_text("version: 1\nplatforms:\n  amd64: [/usr/bin/x]\n")
    link = tmp_path / "linked" / record.FILE_NAME
    link.parent.mkdir()
    link.symlink_to(small)
    assert record.load(link).platforms == {"amd64": ("/usr/bin/x",)}


@pytest.mark.parametrize(("text", "where", "says"), [
    ("version: 1\nplatforms: {amd64: [/a, etc/passwd]}", "platforms.amd64.1:", "not an absolute"),
    ("version: 1\nplatforms: {arm64: [/etc/../etc/passwd]}", "platforms.arm64.0:", "normalized"),
    ('version: 1\nplatforms: {amd64: ["/etc/\\0x"]}', "platforms.amd64.0:", "NUL"),
    ("version: 1\nplatforms: {amd64: [/" + "a" * 5000 + "]}", "platforms.amd64.0:", "longer than 4095"),
    ("version: 1\nplatforms: {amd64: [/etc], bogus: [/x]}", "platforms.bogus:", "not a platform name"),
    ("version: 1\nplatforms: {linux/amd64: [/etc]}", "platforms.linux/amd64:", "not a platform name"),
    ("version: 1\nplatforms: {amd64: &a [*a]}", "platforms.amd64.0:", "valid string"),
    ("version: 1\nplatforms: {amd64: [/x], arm64: null}", "platforms.arm64:", "valid list"),
    ("not: [yaml", "cannot read:", "expected ','"),
])
def test_a_malformed_record_names_the_platform_and_entry(tmp_path: Path, text: str, where: str,
                                                         says: str) -> None:
    path = tmp_path / record.FILE_NAME
    path.write_text(text)
    message = _load_error(path)
    assert f"{path}: {where}" in message and says in message, message
    assert "<unicode string>" not in message


def test_a_record_of_every_platform_and_odd_bytes_loads_back(tmp_path: Path) -> None:
    path = tmp_path / record.FILE_NAME
    written = record.TraceRecord({"amd64": ("/etc", "/x\udcff"), "arm/v7": ("/usr/bin/a b",)})
    written.dump(path)
    assert record.load(path) == written


def test_the_config_user_is_looked_up_as_a_runtime_does() -> None:
    from xarch.errors import RecipeError
    from xarch.oci.tree import Entry, Tree
    from xarch.trace.runner import user_ids

    tree = Tree()
    passwd = b"root:x:0:0::/root:/bin/sh\nweb:x:101:102::/:/bin/sh\n"
    tree.add(Entry("etc/passwd", "file", 0o644, data=passwd))
    tree.add(Entry("etc/group", "file", 0o644, data=b"root:x:0:\nweb:x:102:\nstaff:x:50:\n"))
    assert user_ids(None, tree) == (0, 0)
    assert user_ids("web", tree) == (101, 102)  # the primary group from /etc/passwd
    assert user_ids("web:staff", tree) == (101, 50)
    assert user_ids("1000", tree) == (1000, 0)  # a bare uid runs with gid 0, as runc
    assert user_ids("1000:7", tree) == (1000, 7)
    with pytest.raises(RecipeError, match="'nobody' is not in the image's /etc/passwd"):
        user_ids("nobody", tree, "xarch.yaml: ")
