"""The cache of unpacked package trees (xarch/sources/debian/pkgtrees.py) and stage roots assembled from it
(xarch/run/stageroot.py, xarch/run/overlay.py), with real .debs (dpkg-deb), real overlayfs mounts
and a real sandboxed step that attacks the cached files through its root."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.aptrepo import FixturePackage, build_deb
from tests.support.needs import need_root, need_tool
from tests.support.nobody import NOBODY, as_nobody
from xarch.oci.store import Store
from xarch.oci.tree import Entry, Tree
from xarch.run import overlay, sandbox
from xarch.run.chroot import run_in_rootfs
from xarch.run.stageroot import assemble_root
from xarch.sources.debian.deb import read_deb
from xarch.sources.debian.install import install_packages
from xarch.sources.debian.lock import LockedPackage
from xarch.sources.debian.pkgtrees import MANIFEST, PackageTree, PackageTrees, farm_key, tree_digest, tree_key

EPOCH = 1700000000
TOOL = b"#!/bin/sh\necho tool\n"
CONF = b"original setting\n"


def _deb(tmp_path: Path, version: str = "1.0", conf: bytes = CONF) -> Path:
    need_tool("dpkg-deb")
    package = FixturePackage("tool", version, "all", files={
        "usr/bin/tool": TOOL, "etc/tool.conf": conf, "usr/share/tool/data": b"x" * 5000})
    return build_deb(package, tmp_path / "roots", tmp_path / "debs")


def _locked(store: Store, deb: Path, version: str = "1.0") -> LockedPackage:
    sha = store.put_bytes(deb.read_bytes())
    return LockedPackage("tool", version, "all", f"pool/{deb.name}", deb.stat().st_size, sha, "stable")


def _install(store: Store, pkg: LockedPackage, trees: PackageTrees | None) -> Tree:
    tree = Tree()
    install_packages(tree, [pkg], store, EPOCH, trees=trees)
    return tree


def _state(path: Path) -> tuple[str, int, int, int]:
    info = path.lstat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), info.st_mode, info.st_uid, info.st_size


def _data_files(folder: Path) -> dict[str, tuple[str, int, int, int]]:
    return {p.name: _state(p) for p in sorted((folder / "data").iterdir())}


def test_a_deb_is_unpacked_once_and_its_tree_reused_with_the_same_entries(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    pkg = _locked(store, _deb(tmp_path))
    trees = PackageTrees(store)
    first = trees.get(pkg.sha256, read_deb(store.path(pkg.sha256)))
    inodes = {p.name: p.stat().st_ino for p in (first.folder / "data").iterdir()}
    again = trees.get(pkg.sha256, read_deb(store.path(pkg.sha256)))
    assert again.folder == first.folder
    # Not written again: the same files (inodes), read back from the manifest.
    assert {p.name: p.stat().st_ino for p in (again.folder / "data").iterdir()} == inodes
    # The tree made from the cache holds what the tree made from the .deb itself holds, byte for byte.
    cached, direct = _install(store, pkg, trees), _install(store, pkg, None)
    assert [e.path for e in cached] == [e.path for e in direct]
    for mine, theirs in zip(cached, direct, strict=True):
        assert (mine.type, mine.mode, mine.uid, mine.gid, mine.mtime, mine.linkname) == \
            (theirs.type, theirs.mode, theirs.uid, theirs.gid, theirs.mtime, theirs.linkname)
        assert mine.read() == theirs.read()
    tool = cached.entries["usr/bin/tool"]
    assert tool.source is not None and tool.source.parent == first.folder / "data"
    assert tree_digest(cached) == tree_digest(direct)
    # The cache folder is no other account's to enter.
    assert (store.root / "trees").stat().st_mode & 0o777 == 0o700


def test_the_key_changes_with_the_deb_the_unpacker_and_the_owner(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    one = _locked(store, _deb(tmp_path / "a"))
    two = _locked(store, _deb(tmp_path / "b", "1.1", b"another setting\n"), "1.1")
    assert one.sha256 != two.sha256
    trees = PackageTrees(store)
    first = trees.get(one.sha256, read_deb(store.path(one.sha256)))
    second = trees.get(two.sha256, read_deb(store.path(two.sha256)))
    assert first.key != second.key and first.folder != second.folder
    assert tree_key(one.sha256, 0) != tree_key(one.sha256, 1)
    assert len({tree_digest(_install(store, p, trees)) for p in (one, two)}) == 2


@pytest.mark.parametrize("damage", ["truncated", "appended", "deleted", "chmod", "manifest", "other key"])
def test_a_damaged_entry_is_never_served_and_is_unpacked_again(tmp_path: Path, damage: str) -> None:
    store = Store(tmp_path / "store")
    pkg = _locked(store, _deb(tmp_path))
    trees = PackageTrees(store)
    entry = trees.get(pkg.sha256, read_deb(store.path(pkg.sha256)))
    good = _data_files(entry.folder)
    victim = next(m.data for m in entry.members if m.data is not None and m.info.name.endswith("tool.conf"))
    assert victim is not None
    if damage == "truncated":
        os.truncate(victim, 3)
    elif damage == "appended":
        with victim.open("ab") as handle:
            handle.write(b"evil\n")
    elif damage == "deleted":
        victim.unlink()
    elif damage == "chmod":
        victim.chmod(0o4755)
    elif damage == "manifest":
        (entry.folder / MANIFEST).write_text('{"version": "xarch-pkgtree/1", "members": [')
    else:
        record = json.loads((entry.folder / MANIFEST).read_text())
        record["key"] = "0" * 64
        (entry.folder / MANIFEST).write_text(json.dumps(record))
    again = trees.get(pkg.sha256, read_deb(store.path(pkg.sha256)))
    assert _data_files(again.folder) == good
    assert _install(store, pkg, trees).entries["etc/tool.conf"].read() == CONF


def test_a_half_written_entry_of_a_killed_build_never_counts(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    pkg = _locked(store, _deb(tmp_path))
    trees = PackageTrees(store)
    key = tree_key(pkg.sha256, trees.owner)
    # What a build killed mid-write leaves: its temporary folder, a half manifest, a short file.
    pid = _dead_pid()
    half = trees.root / f".tmp-{pid}-abc"
    (half / "data").mkdir(parents=True)
    (half / "data" / "0").write_bytes(b"#!/bin")
    (half / MANIFEST).write_text('{"version": "xarch-pkgtree/1", "key": "' + key + '", "members": [')
    # An entry folder that holds no manifest is not an entry either (and is cleared away).
    (trees.root / key / "data").mkdir(parents=True)
    entry = trees.get(pkg.sha256, read_deb(store.path(pkg.sha256)))
    assert entry.folder == trees.root / key
    assert not half.exists()  # its writer is gone: removed
    assert _install(store, pkg, trees).entries["usr/bin/tool"].read() == TOOL


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.fixture
def mounts() -> Iterator[None]:
    need_root("overlayfs stage roots are mounted by root only")
    need_tool("bwrap")
    with overlay.stage_mounts():
        if not overlay.available():
            pytest.fail("root could not make a private mount namespace for overlay stage roots")
        yield


def _shell_tree(tmp_path: Path) -> tuple[Store, LockedPackage, PackageTrees, Tree]:
    """The fixture package, owned as steps need it, with the host's busybox as /bin/sh."""
    busybox = need_tool("busybox")
    store = Store(tmp_path / "store")
    pkg = _locked(store, _deb(tmp_path))
    trees = PackageTrees(store, sandbox.host_owner())
    tree = _install(store, pkg, trees)
    tree.add(Entry("usr/bin/sh", "file", 0o755, source=Path(busybox)))
    return store, pkg, trees, tree


HOSTILE = """
echo hacked >> /etc/tool.conf
printf 'x' > /usr/bin/tool
chmod 4777 /etc/tool.conf
truncate -s 0 /usr/share/tool/data
ln /usr/share/tool/data /linked && echo through-a-link >> /linked
chown 0:0 /usr/bin/tool
touch -d @0 /usr/share/tool/data
cat /etc/tool.conf
"""


def attack(root: Path, entry: PackageTree) -> None:
    """Run HOSTILE in ROOT, a stage root assembled over ENTRY's cached files (checked: the root's
    package files are the cache's inodes, no data copied), and check that the step did what it
    asked in its own root (copy-up)."""
    conf = next(m.data for m in entry.members if m.data is not None and m.info.name.endswith("tool.conf"))
    assert conf is not None and (root / "etc/tool.conf").stat().st_ino == conf.stat().st_ino
    lines: list[str] = []
    result = run_in_rootfs(root, HOSTILE, {"PATH": "/usr/bin:/bin"}, log=lines.append)
    assert result.exit_code == 0, lines
    assert (root / "etc/tool.conf").read_bytes() == CONF + b"hacked\n"
    assert (root / "usr/bin/tool").read_bytes() == b"x"
    assert (root / "etc/tool.conf").stat().st_mode & 0o7777 == 0o4777
    assert (root / "usr/share/tool/data").read_bytes() == b"through-a-link\n"


def test_a_hostile_step_never_changes_the_cache_it_still_writes_its_root(
        tmp_path: Path, mounts: None) -> None:
    store, pkg, trees, tree = _shell_tree(tmp_path)
    entry = trees.get(pkg.sha256, read_deb(store.path(pkg.sha256)))
    before = _data_files(entry.folder)
    base = tmp_path / "stage"
    root = base / "root"
    root.mkdir(parents=True)
    assemble_root(tree, store, base, root)
    attack(root, entry)
    # ... and not one byte, mode, owner or size of the cache changed.
    assert _data_files(entry.folder) == before
    assert trees.get(pkg.sha256, read_deb(store.path(pkg.sha256))).folder == entry.folder
    # The next stage root over the same farm starts clean.
    again = tmp_path / "again"
    (again / "root").mkdir(parents=True)
    assemble_root(tree, store, again, again / "root")
    assert (again / "root/etc/tool.conf").read_bytes() == CONF
    assert (again / "root/usr/share/tool/data").read_bytes() == b"x" * 5000


def test_the_sandbox_id_cannot_reach_the_cache_on_the_host(mounts: None) -> None:
    setpriv = need_tool("setpriv")
    # Every folder above the store open to all: only the cache's own 0700 folder stands in the way.
    top = Path(tempfile.mkdtemp(prefix="xarch-pkgtrees-", dir="/var/tmp"))
    try:
        top.chmod(0o755)
        store = Store(top / "store")
        pkg = _locked(store, _deb(top / "debs"))
        trees = PackageTrees(store, sandbox.host_owner())
        entry = trees.get(pkg.sha256, read_deb(store.path(pkg.sha256)))
        store.root.chmod(0o755)
        data = next(m.data for m in entry.members if m.data is not None)
        assert data is not None and data.stat().st_uid == sandbox.sandbox_id()
        ident = sandbox.sandbox_id()
        as_sandbox = [setpriv, f"--reuid={ident}", f"--regid={ident}", "--clear-groups", "sh", "-c"]
        assert subprocess.run([*as_sandbox, f"ls {store.root}"], capture_output=True).returncode == 0
        attempt = subprocess.run([*as_sandbox, f"echo x >> {data}"], capture_output=True, text=True)
        assert attempt.returncode != 0 and "Permission denied" in attempt.stderr
        again = trees.get(pkg.sha256, read_deb(store.path(pkg.sha256)))
        assert _data_files(entry.folder) == _data_files(again.folder)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_a_farm_is_reused_and_changes_with_a_reunpacked_tree(tmp_path: Path, mounts: None) -> None:
    store = Store(tmp_path / "store")
    pkg = _locked(store, _deb(tmp_path))
    trees = PackageTrees(store, sandbox.host_owner())
    tree = _install(store, pkg, trees)
    key = farm_key(tree, trees.owner)
    assert farm_key(_install(store, pkg, trees), trees.owner) == key
    entry = trees.get(pkg.sha256, read_deb(store.path(pkg.sha256)))
    victim = next(m.data for m in entry.members if m.data is not None)
    assert victim is not None
    with victim.open("ab") as handle:
        handle.write(b"damage")
    # Unpacked again (new inodes): a farm linking the damaged bytes is never used again.
    assert farm_key(_install(store, pkg, trees), trees.owner) != key


REWRITE = """
echo new >> /etc/tool.conf
rm /usr/bin/tool
rm -r /usr/share/tool && mkdir -p /usr/share/tool && echo fresh > /usr/share/tool/only
chmod 0600 /usr/share/tool/only
mkdir -p /out && echo made > /out/file
"""


def test_a_step_on_an_overlay_root_is_cached_and_replayed_to_the_same_root(
        tmp_path: Path, mounts: None) -> None:
    from xarch import platforms
    from xarch.run.cache import StepCache
    from xarch.run.cache import folder_digest as disk_digest
    from xarch.run.steps import StepSpec, run_stage_steps

    store, pkg, trees, tree = _shell_tree(tmp_path)
    source = tmp_path / "src"
    source.mkdir()
    (source / "input").write_text("in\n")
    cache = StepCache(tmp_path / "steps")
    roots = []
    said: list[list[str]] = []
    for run in ("ran", "replayed"):
        base = tmp_path / run
        (base / "root").mkdir(parents=True)
        assemble_root(tree, store, base, base / "root")
        assert overlay.upper_of(base / "root") is not None
        lines: list[str] = []
        run_stage_steps([StepSpec(REWRITE)], base / "root", platforms.host(), "native", source, EPOCH, cache,
                        lines.append, inputs={"root": tree_digest(tree)},
                        status=lines.append)
        said.append(lines)
        roots.append(base / "root")
    assert any("running" in line for line in said[0]) and any("cached" in line for line in said[1]), said
    ran, replayed = roots
    assert disk_digest(ran) == disk_digest(replayed)
    for root in roots:
        assert not os.path.lexists(root / "usr/bin/tool")
        assert sorted(os.listdir(root / "usr/share/tool")) == ["only"]  # the lower folder's files are gone
        assert (root / "etc/tool.conf").read_bytes() == CONF + b"new\n"
        assert (root / "usr/share/tool/only").stat().st_mode & 0o777 == 0o600
        assert (root / "out/file").read_text() == "made\n"


def test_a_root_record_is_served_only_while_every_file_its_farm_links_is_whole(
        tmp_path: Path, mounts: None) -> None:
    from xarch.run.stageroot import load_record, record_key, save_record

    store = Store(tmp_path / "store")
    pkg = _locked(store, _deb(tmp_path))
    trees = PackageTrees(store, sandbox.host_owner())
    tree = _install(store, pkg, trees)
    base = tmp_path / "stage"
    (base / "root").mkdir(parents=True)
    lower = assemble_root(tree, store, base, base / "root")
    assert lower is not None
    key = record_key({"packages": [pkg.sha256]})
    assert record_key({"packages": [pkg.sha256 + "0"]}) != key
    save_record(store, key, tree, lower, [("detail", "1 package unpacked")])
    record = load_record(store, key)
    assert record is not None and record.farm == lower and record.digest == tree_digest(tree)
    assert record.said == (("detail", "1 package unpacked"),)
    with (lower / "etc/tool.conf").open("ab") as handle:  # the cached bytes themselves, damaged
        handle.write(b"damage\n")
    assert load_record(store, key) is None
    assert load_record(store, key) is None  # and the record is gone, not served later


@pytest.fixture
def nobody_folder() -> Iterator[Path]:
    """A folder of nobody's below /var/tmp (pytest's own folders are root's only)."""
    need_root("to become nobody")
    need_tool("bwrap")
    top = Path(tempfile.mkdtemp(prefix="xarch-rootless-", dir="/var/tmp"))
    try:
        top.chmod(0o755)
        folder = top / "nobody"
        folder.mkdir()
        os.chown(folder, NOBODY, NOBODY)
        yield folder
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _rootless_shell_tree(folder: Path, deb: Path) -> tuple[Store, PackageTrees, Tree, PackageTree]:
    store = Store(folder / "store")
    pkg = _locked(store, deb)
    trees = PackageTrees(store, sandbox.host_owner())
    tree = _install(store, pkg, trees)
    tree.add(Entry("usr/bin/sh", "file", 0o755, source=Path(need_tool("busybox"))))
    return store, trees, tree, trees.get(pkg.sha256, read_deb(store.path(pkg.sha256)))


def test_without_root_the_root_is_an_overlay_in_a_user_namespace_a_hostile_step_cannot_pass(
    nobody_folder: Path,
) -> None:
    """The same attack as as root, by nobody: xarch enters a user namespace of its own that maps
    nobody to itself, the stage root is an overlay of a farm of the cache's own inodes, and every
    write of the step copies up."""
    deb = _deb(nobody_folder.parent)

    def check(folder: Path) -> None:
        assert not sandbox.running_as_root()
        store, trees, tree, entry = _rootless_shell_tree(folder, deb)
        before = _data_files(entry.folder)
        overlay.allow_user_namespace()
        with overlay.stage_mounts():
            assert overlay.available(), "nobody could not mount an overlay in a user namespace"
            assert overlay.opaque_xattr() == "user.overlay.opaque"
            # Owners as on the host: nobody is mapped to itself, in this namespace.
            assert Path("/proc/self/uid_map").read_text().split() == [str(NOBODY), str(NOBODY), "1"]
            base = folder / "stage"
            (base / "root").mkdir(parents=True)
            assert assemble_root(tree, store, base, base / "root") is not None
            root = base / "root"
            attack(root, entry)
            assert (base / "upper/etc/tool.conf").read_bytes() == CONF + b"hacked\n"
            assert _data_files(entry.folder) == before
            again = folder / "again"
            (again / "root").mkdir(parents=True)
            assemble_root(tree, store, again, again / "root")
            assert (again / "root/etc/tool.conf").read_bytes() == CONF
            assert (again / "root/usr/share/tool/data").read_bytes() == b"x" * 5000
        assert not os.path.ismount(root) and (root / "etc").exists() is False

    as_nobody(check, nobody_folder)


def test_without_root_a_step_on_an_overlay_root_is_cached_and_replayed_to_the_same_root(
    nobody_folder: Path,
) -> None:
    """REWRITE makes a folder anew over a lower one: in a user namespace overlayfs marks it opaque
    with user.overlay.opaque, which the step cache must see as a deleted folder to replay it."""
    deb = _deb(nobody_folder.parent)

    def check(folder: Path) -> None:
        from xarch import platforms
        from xarch.run.cache import StepCache
        from xarch.run.cache import folder_digest as disk_digest
        from xarch.run.steps import StepSpec, run_stage_steps

        store, trees, tree, _ = _rootless_shell_tree(folder, deb)
        source = folder / "src"
        source.mkdir()
        (source / "input").write_text("in\n")
        cache = StepCache(folder / "steps")
        overlay.allow_user_namespace()
        with overlay.stage_mounts():
            assert overlay.available()
            said: list[list[str]] = []
            roots = []
            for run in ("ran", "replayed"):
                base = folder / run
                (base / "root").mkdir(parents=True)
                assert assemble_root(tree, store, base, base / "root") is not None
                lines: list[str] = []
                run_stage_steps(
                    [StepSpec(REWRITE)],
                    base / "root",
                    platforms.host(),
                    "native",
                    source,
                    EPOCH,
                    cache,
                    lines.append,
                    inputs={"root": tree_digest(tree)},
                    status=lines.append,
                )
                said.append(lines)
                roots.append(base / "root")
            assert any("running" in line for line in said[0]) and any("cached" in line for line in said[1])
            assert disk_digest(roots[0]) == disk_digest(roots[1])
            for root in roots:
                assert not os.path.lexists(root / "usr/bin/tool")
                assert sorted(os.listdir(root / "usr/share/tool")) == ["only"]
                assert (root / "etc/tool.conf").read_bytes() == CONF + b"new\n"
                assert (root / "out/file").read_text() == "made\n"

    as_nobody(check, nobody_folder)


def test_without_root_and_no_user_namespace_the_root_is_copied_as_before(nobody_folder: Path) -> None:
    """A process with a second thread cannot enter a user namespace (unshare refuses): the stage
    root is written from the cached files, as before, and the step runs the same."""
    deb = _deb(nobody_folder.parent)

    def check(folder: Path) -> None:
        store, trees, tree, entry = _rootless_shell_tree(folder, deb)
        before = _data_files(entry.folder)
        overlay.allow_user_namespace()
        stop = threading.Event()
        other = threading.Thread(target=stop.wait)
        other.start()
        try:
            with overlay.stage_mounts():
                assert not overlay.available()
                base = folder / "stage"
                (base / "root").mkdir(parents=True)
                assert assemble_root(tree, store, base, base / "root") is None
                root = base / "root"
                conf = next(
                    m.data for m in entry.members if m.data is not None and m.info.name.endswith("tool.conf")
                )
                assert conf is not None and (root / "etc/tool.conf").stat().st_ino != conf.stat().st_ino
                lines: list[str] = []
                result = run_in_rootfs(root, HOSTILE, {"PATH": "/usr/bin:/bin"}, log=lines.append)
                assert result.exit_code == 0, lines
                assert (root / "etc/tool.conf").read_bytes() == CONF + b"hacked\n"
                assert _data_files(entry.folder) == before
        finally:
            stop.set()
            other.join()
        assert Path("/proc/self/uid_map").read_text().split() == ["0", "0", "4294967295"]

    as_nobody(check, nobody_folder)
