"""Property tests of the normalized tar writer (xarch/oci/tar.py, xarch/oci/layer.py).

Any tree, inserted in any order, with any mtimes at or after the epoch, gives the same
bytes; the bytes read back the same through Python's tarfile and GNU tar; no header
carries the host's user or group names; mtimes are clamped to the epoch.
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import random
import re
import shutil
import stat
import subprocess
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.hello import REPO
from tests.support.needs import need_root, need_tool
from xarch.oci.layer import build_layer, fix_hardlinks
from xarch.oci.tar import BLOCK, write_tar
from xarch.oci.tree import Entry, Tree

EPOCH = 1_700_000_000

# No space, ">" or newline: GNU tar's listing puts " -> " and " link to " after names.
# Multi-byte characters make byte lengths pass ustar's 100/155/255 limits quickly.
NAME_ALPHABET = st.sampled_from(list("abcxyz019-_.") + ["é", "ß", "日本", "🐍", "Ω"])
component = st.lists(NAME_ALPHABET, min_size=1, max_size=40).map("".join).filter(
    lambda c: c not in (".", "..")
)
paths = st.lists(component, min_size=1, max_size=7).map("/".join)
modes = st.integers(0, 0o7777)
# Above 0o7777777 an id needs a PAX record.
ids = st.one_of(st.integers(0, 65535), st.integers(0, 2**32 - 1))


@st.composite
def trees(draw: st.DrawFn) -> list[Entry]:
    """A consistent image tree: parents are folders, hard links point at regular files."""
    wanted = draw(st.lists(st.tuples(paths, st.sampled_from(["file", "dir", "symlink", "hardlink"])),
                           min_size=1, max_size=14, unique_by=lambda item: item[0]))
    tree = Tree()
    files: list[str] = []
    for path, kind in wanted:
        parts = path.split("/")
        parents = ["/".join(parts[:depth]) for depth in range(1, len(parts))]
        if any(p in tree.entries and tree.entries[p].type != "dir" for p in parents) or path in tree.entries:
            continue
        mode, uid, gid = draw(modes), draw(ids), draw(ids)
        if kind == "hardlink" and not files:
            kind = "file"
        if kind == "file":
            entry = Entry(path, "file", mode, uid, gid, data=draw(st.binary(max_size=1500)))
            files.append(path)
        elif kind == "dir":
            entry = Entry(path, "dir", mode, uid, gid)
        elif kind == "symlink":
            target = draw(st.one_of(paths, paths.map(lambda p: "/" + p), st.just("../x")))
            entry = Entry(path, "symlink", 0o777, uid, gid, linkname=target)
        else:
            entry = Entry(path, "hardlink", mode, uid, gid, linkname=draw(st.sampled_from(files)))
        tree.add_parents(path, draw(modes), draw(ids), draw(ids))
        tree.add(entry)
    return list(tree)


def tar_bytes(entries: list[Entry], epoch: int = EPOCH) -> bytes:
    buffer = io.BytesIO()
    write_tar(fix_hardlinks(entries), epoch, buffer)
    return buffer.getvalue()


def header_blocks(data: bytes) -> list[bytes]:
    """Every header block (PAX headers included) of a tar written by write_tar."""
    blocks, offset = [], 0
    while offset + BLOCK <= len(data):
        block = data[offset : offset + BLOCK]
        if block == b"\x00" * BLOCK:
            break
        blocks.append(block)
        size = int(block[124:136].rstrip(b"\x00").decode() or "0", 8)
        offset += BLOCK + size + (-size % BLOCK)
    return blocks


def expected_mtime(entry: Entry, epoch: int) -> int:
    return epoch if entry.mtime is None else max(0, min(entry.mtime, epoch))


settings.register_profile("xarch-tar", max_examples=80, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
tar_settings = settings.get_profile("xarch-tar")


@tar_settings
@given(entries=trees(), order=st.randoms(use_true_random=False),
       late=st.lists(st.integers(EPOCH, 2**33), min_size=40, max_size=40))
def test_same_bytes_for_any_insertion_order_and_late_mtimes(entries: list[Entry], order: random.Random,
                                                          late: list[int]) -> None:
    reference = tar_bytes(entries)
    shuffled = list(entries)
    order.shuffle(shuffled)
    # An mtime at or after the epoch is clamped to it: the same as no mtime at all.
    shuffled = [replace(e, mtime=late[i % len(late)]) for i, e in enumerate(shuffled)]
    assert tar_bytes(shuffled) == reference
    tree = Tree()
    for entry in shuffled:
        tree.add(entry)
    assert tar_bytes(list(tree)) == reference


@tar_settings
@given(entries=trees())
def test_layer_blob_is_a_function_of_the_tree(entries: list[Entry]) -> None:
    first = build_layer("l", entries, EPOCH, 6)
    second = build_layer("l", list(reversed(entries)), EPOCH, 6)
    assert (first.diff_id, first.blob) == (second.diff_id, second.blob)


def _expected(entries: list[Entry]) -> dict[str, Entry]:
    return {e.path: e for e in fix_hardlinks(entries)}


@tar_settings
@given(entries=trees(),
       mtimes=st.lists(st.one_of(st.none(), st.integers(-5, 2**34)), min_size=20, max_size=20))
def test_python_tarfile_reads_back_the_tree(entries: list[Entry], mtimes: list[int]) -> None:
    entries = [replace(e, mtime=mtimes[i % len(mtimes)]) for i, e in enumerate(entries)]
    expected = _expected(entries)
    data = tar_bytes(entries)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = archive.getmembers()
        assert [m.name for m in members] == sorted(expected, key=lambda p: p.encode())
        for member in members:
            entry = expected[member.name]
            assert member.mode == entry.mode
            assert (member.uid, member.gid) == (entry.uid, entry.gid)
            assert (member.uname, member.gname) == ("", "")
            assert member.mtime == expected_mtime(entry, EPOCH)
            assert member.mtime <= EPOCH
            assert member.pax_headers.keys() <= {"path", "linkpath", "uid", "gid", "size"}
            if entry.type == "file":
                assert member.isreg()
                extracted = archive.extractfile(member)
                assert extracted is not None and extracted.read() == entry.read()
            elif entry.type == "dir":
                assert member.isdir()
            elif entry.type == "symlink":
                assert member.issym() and member.linkname == entry.linkname
            else:
                assert member.islnk() and member.linkname == entry.linkname
                assert expected[entry.linkname].type == "file"
                # The target comes first, so an extractor can make the link.
                assert entry.linkname.encode() < entry.path.encode()


_GNU_LINE = re.compile(
    r"^(?P<mode>\S{10}) (?P<uid>\d+)/(?P<gid>\d+) +(?P<size>\d+) (?P<date>\S+ \S+) (?P<rest>.*)$"
)


def gnu_listing(data: bytes, folder: Path) -> list[dict[str, str]]:
    archive = folder / "layer.tar"
    archive.write_bytes(data)
    result = subprocess.run(
        [need_tool("tar"), "--list", "--verbose", "--numeric-owner", "--full-time", "--utc",
         "--quoting-style=literal", "-f", str(archive)],
        capture_output=True, check=False, env={**os.environ, "LC_ALL": "C.UTF-8"},
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    rows = []
    for line in result.stdout.decode("utf-8").splitlines():
        match = _GNU_LINE.match(line)
        assert match, line
        rows.append(match.groupdict())
    return rows


def _gnu_mode(entry: Entry) -> str:
    kind = {"file": stat.S_IFREG, "hardlink": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK}
    text = stat.filemode(kind[entry.type] | entry.mode)
    return ("h" + text[1:]) if entry.type == "hardlink" else text


@tar_settings
@given(entries=trees())
def test_gnu_tar_lists_the_same_tree(entries: list[Entry], tmp_path_factory: pytest.TempPathFactory) -> None:
    expected = _expected(entries)
    rows = gnu_listing(tar_bytes(entries), tmp_path_factory.mktemp("gnu"))
    ordered = sorted(expected.values(), key=lambda e: e.path.encode())
    assert len(rows) == len(ordered)
    for row, entry in zip(rows, ordered, strict=True):
        assert row["mode"] == _gnu_mode(entry)
        assert (int(row["uid"]), int(row["gid"])) == (entry.uid, entry.gid)
        assert row["date"] == "2023-11-14 22:13:20"  # EPOCH in UTC: mtimes are unset here
        if entry.type == "dir":
            assert row["rest"] == entry.path + "/"
        elif entry.type == "symlink":
            assert row["rest"] == f"{entry.path} -> {entry.linkname}"
        elif entry.type == "hardlink":
            assert row["rest"] == f"{entry.path} link to {entry.linkname}"
        else:
            assert row["rest"] == entry.path
            assert int(row["size"]) == len(entry.read())


@tar_settings
@given(entries=trees())
def test_headers_never_carry_user_or_group_names(entries: list[Entry]) -> None:
    for block in header_blocks(tar_bytes(entries)):
        assert block[257:265] == b"ustar\x0000"
        assert block[265:297] == b"\x00" * 32  # uname
        assert block[297:329] == b"\x00" * 32  # gname
        assert block[329:345] == b"0000000\x000000000\x00"  # devmajor, devminor


def test_long_names_across_every_ustar_limit(tmp_path: Path) -> None:
    """Names that fit ustar, need its prefix field, or need a PAX record read back whole."""
    long_part = "n" * 120  # one component over 100 bytes: no ustar split exists
    names = [
        "a" * 99,
        "d" * 60 + "/" + "e" * 60,  # 121 bytes: prefix + name
        "/".join(["f" * 50] * 5),  # 254 bytes
        "/".join(["g" * 50] * 6),  # 305 bytes: PAX path
        "h/" + long_part,
        "日本/" * 40 + "🐍",
    ]
    entries = [Entry(n, "file", 0o640, 1000, 1000, data=n.encode()) for n in names]
    entries.append(Entry("link", "symlink", 0o777, linkname="/" + "t" * 300))
    data = tar_bytes(entries)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        read = {m.name: m for m in archive.getmembers()}
    assert set(read) == set(names) | {"link"}
    assert read["link"].linkname == "/" + "t" * 300
    rows = gnu_listing(data, tmp_path)
    assert sorted(r["rest"] for r in rows) == sorted([*names, "link -> /" + "t" * 300])


def test_mtime_is_clamped_to_the_epoch() -> None:
    entries = [
        Entry("early", "file", 0o644, mtime=1000, data=b""),
        Entry("late", "file", 0o644, mtime=EPOCH + 1, data=b""),
        Entry("unset", "file", 0o644, data=b""),
        Entry("negative", "file", 0o644, mtime=-1, data=b""),
    ]
    with tarfile.open(fileobj=io.BytesIO(tar_bytes(entries))) as archive:
        mtimes = {m.name: m.mtime for m in archive.getmembers()}
    assert mtimes == {"early": 1000, "late": EPOCH, "unset": EPOCH, "negative": 0}


def test_source_files_on_disk_give_the_bytes_of_their_data(tmp_path: Path) -> None:
    """A file read from disk adds nothing of the disk: not its mtime, mode, owner or name."""
    source = tmp_path / "payload"
    source.write_bytes(b"payload\n")
    os.chmod(source, 0o600)
    os.utime(source, (12345, 12345))
    from_disk = [Entry("usr/bin/app", "file", 0o755, source=source)]
    from_memory = [Entry("usr/bin/app", "file", 0o755, data=b"payload\n")]
    assert tar_bytes(from_disk) == tar_bytes(from_memory)
    os.utime(source, (EPOCH + 99, EPOCH + 99))
    os.chmod(source, 0o777)
    assert tar_bytes(from_disk) == tar_bytes(from_memory)


def test_end_of_archive_is_two_zero_blocks_without_record_padding() -> None:
    data = tar_bytes([Entry("a", "file", 0o644, data=b"x")])
    assert len(data) == 4 * BLOCK  # header, one data block, two zero blocks (no 10240 record)
    assert data[-2 * BLOCK :] == b"\x00" * 2 * BLOCK


def _extract_with_gnu_tar(data: bytes, folder: Path) -> Path:
    archive = folder / "layer.tar"
    archive.write_bytes(data)
    root = folder / "root"
    root.mkdir()
    result = subprocess.run(
        [need_tool("tar"), "--extract", "--numeric-owner", "--same-owner", "--same-permissions",
         "-f", str(archive), "-C", str(root)],
        capture_output=True, check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    return root


@settings(tar_settings, max_examples=30)
@given(entries=trees())
def test_gnu_tar_extracts_the_same_contents_modes_and_links(
    entries: list[Entry], tmp_path_factory: pytest.TempPathFactory
) -> None:
    need_root("extracting owners and set-id bits needs root")
    root = _extract_with_gnu_tar(tar_bytes(entries), tmp_path_factory.mktemp("extract"))
    expected = _expected(entries)
    found = {str(p.relative_to(root)) for p in root.rglob("*")}
    assert found == set(expected)
    for path, entry in expected.items():
        on_disk = root / path
        info = on_disk.lstat()
        if entry.type == "hardlink":
            # One inode: a link has its file's mode and owner on disk, whatever its own header says.
            target = (root / entry.linkname).lstat()
            assert (info.st_ino, info.st_dev) == (target.st_ino, target.st_dev)
            continue
        # uid 2**32-1 is chown's "leave unchanged", so it cannot be checked on disk.
        if entry.uid < 2**32 - 1 and entry.gid < 2**32 - 1:
            assert (info.st_uid, info.st_gid) == (entry.uid, entry.gid)
        if entry.type == "symlink":
            assert stat.S_ISLNK(info.st_mode) and os.readlink(on_disk) == entry.linkname
            continue
        assert stat.S_IMODE(info.st_mode) == entry.mode
        if entry.type == "dir":
            assert stat.S_ISDIR(info.st_mode)
        else:
            assert stat.S_ISREG(info.st_mode) and on_disk.read_bytes() == entry.read()


def test_ustar_name_field_is_never_empty() -> None:
    folder = "a" * 60 + "/" + "b" * 50  # 111 bytes, 112 with the folder's "/"
    data = tar_bytes([Entry("a" * 60, "dir", 0o755), Entry(folder, "dir", 0o755)])
    for block in header_blocks(data):
        assert block[0] != 0, (block[:100], block[345:500])


# A tree that reaches every branch of the header encoder: ustar split, PAX path and linkpath,
# PAX uid/gid, big and empty files, set-id and sticky bits, hard links, unicode.
GOLDEN_PROGRAM = r"""
import hashlib, io, sys
from xarch.oci.tar import write_tar
from xarch.oci.tree import Entry

entries = [
    Entry("bin", "dir", 0o755),
    Entry("bin/app", "file", 0o4755, 0, 0, mtime=5, data=bytes(range(256)) * 40),
    Entry("bin/hard", "hardlink", 0o4755, linkname="bin/app"),
    Entry("bin/sh", "symlink", 0o777, linkname="app"),
    Entry("d" * 60 + "/" + "e" * 60, "file", 0o640, 1000, 1000, data=b""),
    Entry("/".join(["f" * 50] * 6), "file", 0o600, 2**22, 2**30, data=b"pax ids"),
    Entry("long-link", "symlink", 0o777, linkname="/" + "t" * 300),
    Entry("tmp", "dir", 0o1777, mtime=2**40),
    Entry("日本/🐍", "file", 0o644, data="ünïcødé\n".encode()),
]
buffer = io.BytesIO()
write_tar(entries, 1_700_000_000, buffer)
sys.stdout.write(hashlib.sha256(buffer.getvalue()).hexdigest())
"""
GOLDEN_SHA256 = "92c70299985d745302931a1681b76b892bd22a2025cfbb2664fbe711be1003a0"


def _interpreters() -> list[str]:
    """CPython 3.10–3.13 found on this host (pyenv installs them under ~/.pyenv/versions)."""
    found = set(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[0-3]*/bin/python3")))
    found |= {p for p in (shutil.which(f"python3.{minor}") for minor in range(10, 14)) if p}
    return sorted(found)


def test_tar_bytes_are_known_and_the_same_under_every_cpython() -> None:
    """tarfile's output changed between CPython versions; this writer's must not."""
    results = {}
    for interpreter in _interpreters():
        run = subprocess.run([interpreter, "-c", GOLDEN_PROGRAM], capture_output=True, text=True, check=False,
                             env={"PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", "")})
        if run.returncode == 0:  # a pyenv shim without a selected version fails: not an interpreter
            results[interpreter] = run.stdout
    namespace: dict[str, object] = {}
    with contextlib.redirect_stdout(io.StringIO()) as here:
        exec(GOLDEN_PROGRAM, namespace)  # this interpreter, in process
    results["this interpreter"] = here.getvalue()
    # Every CPython found must give the golden bytes; one alone (a fresh Debian 12 has only 3.11 and
    # no pyenv) still checks them against the golden digest, so nothing here skips.
    assert set(results.values()) == {GOLDEN_SHA256}, results


STREAM_LAYER = """\
import sys
from pathlib import Path
from xarch.oci.layer import write_layer
from xarch.oci.tree import Entry
from xarch.oci.store import Store
big = Path(sys.argv[1])
layer = write_layer("big", [Entry("big", "file", 0o644, source=big)], 1, Store(Path(sys.argv[2])), "gzip", 1)
# VmHWM: the peak of this program's own memory (ru_maxrss would carry the forking parent's over exec)
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(hwm * 1024, layer.uncompressed_size, layer.path)
"""


def test_a_layer_is_streamed_not_held_in_memory(tmp_path: Path) -> None:
    """A 512 MiB file (sparse: no disk used) becomes a layer in a process that never holds it."""
    import sys

    big = tmp_path / "big"
    with big.open("wb") as handle:
        handle.truncate(512 << 20)
    result = subprocess.run([sys.executable, "-c", STREAM_LAYER, str(big), str(tmp_path / "store")],
                            capture_output=True, text=True, check=True, cwd=REPO)
    peak, size, blob = result.stdout.split()
    assert int(size) == (512 << 20) + 3 * BLOCK  # header, content, two zero blocks
    assert int(peak) < 120 << 20, f"peak RSS {int(peak) >> 20} MiB for a 512 MiB layer"
    with tarfile.open(blob, "r:gz") as archive:
        member = archive.getmember("big")
        assert member.size == 512 << 20


def test_a_failing_source_leaves_nothing_in_the_store(tmp_path: Path) -> None:
    """An error while the tar is produced (here a file gone before it is read) reaches the caller
    from the producer thread, and the store keeps no partial blob."""
    from xarch.oci.layer import write_layer
    from xarch.oci.store import Store

    big = tmp_path / "big"
    big.write_bytes(os.urandom(3 << 20))
    entries = [Entry("a", "file", 0o644, source=big), Entry("b", "file", 0o644, source=tmp_path / "gone")]
    store = Store(tmp_path / "store")
    with pytest.raises(FileNotFoundError):
        write_layer("l", entries, EPOCH, store, "gzip", 6, workers=2)
    assert list((tmp_path / "store" / "sha256").iterdir()) == []


@tar_settings
@given(entries=trees(), size=st.integers(0, 2**34),
       mtimes=st.lists(st.one_of(st.none(), st.integers(-5, 2**34)), min_size=14, max_size=14))
def test_the_packed_header_is_the_general_encoders(entries: list[Entry], mtimes: list[int | None],
                                                   size: int) -> None:
    """_pack_header (one plain ustar block, written into the chunk) gives entry_headers' bytes
    whenever it applies; where it does not (a PAX record, a name split into ustar's prefix) it
    writes nothing and tar_chunks uses entry_headers."""
    from xarch.oci.tar import _pack_header, entry_headers

    for index, entry in enumerate(entries):
        entry = replace(entry, mtime=mtimes[index % len(mtimes)])
        into = bytearray(b"\xff" * 3 * BLOCK)
        expected = entry_headers(entry, EPOCH, size)
        if _pack_header(entry, EPOCH, size, into, BLOCK):
            assert bytes(into[BLOCK : 2 * BLOCK]) == expected
            assert into[:BLOCK] == into[2 * BLOCK :] == b"\xff" * BLOCK
        else:
            assert into == b"\xff" * 3 * BLOCK


@tar_settings
@given(entries=trees(), blocks=st.integers(1, 9))
def test_chunks_are_exactly_the_chunk_size_and_the_bytes_do_not_depend_on_it(entries: list[Entry],
                                                                             blocks: int) -> None:
    from xarch.oci.tar import tar_chunks

    ordered = fix_hardlinks(entries)
    chunks = list(tar_chunks(ordered, EPOCH, blocks * BLOCK))
    assert all(len(chunk) == blocks * BLOCK for chunk in chunks[:-1])
    assert 0 < len(chunks[-1]) <= blocks * BLOCK
    assert b"".join(chunks) == b"".join(tar_chunks(ordered, EPOCH)) == tar_bytes(entries)


def test_a_source_that_shrinks_while_read_is_an_error_naming_it(tmp_path: Path) -> None:
    from xarch.oci.tar import TarError, tar_chunks

    source = tmp_path / "log"
    source.write_bytes(b"x" * 4096)
    chunks = tar_chunks([Entry("var/log", "file", 0o644, source=source)], EPOCH, 2 * BLOCK)
    assert next(chunks) == next(iter(tar_chunks([Entry("var/log", "file", 0o644, data=b"x" * 4096)], EPOCH,
                                                2 * BLOCK)))
    with source.open("r+b") as handle:
        handle.truncate(600)
    with pytest.raises(TarError, match=f"^var/log: {re.escape(str(source))} shrank while it was written"):
        list(chunks)


def test_a_source_that_grows_while_read_is_cut_at_its_size_when_opened(tmp_path: Path) -> None:
    from xarch.oci.tar import tar_chunks

    source = tmp_path / "log"
    source.write_bytes(b"x" * 4096)
    chunks = tar_chunks([Entry("var/log", "file", 0o644, source=source)], EPOCH, 2 * BLOCK)
    first = next(chunks)
    with source.open("ab") as handle:
        handle.write(b"y" * 5000)
    assert first + b"".join(chunks) == tar_bytes([Entry("var/log", "file", 0o644, data=b"x" * 4096)])


def test_a_source_that_is_a_folder_is_an_os_error_naming_it(tmp_path: Path) -> None:
    from xarch.oci.tar import tar_chunks

    with pytest.raises(IsADirectoryError, match=re.escape(str(tmp_path))):
        list(tar_chunks([Entry("etc", "file", 0o644, source=tmp_path)], EPOCH))
