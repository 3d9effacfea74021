"""xarch against a reference that runs the maintainer scripts: mmdebstrap.

The same 15 common packages (and so the same closure, read from mmdebstrap's dpkg status)
from the same archives, built by mmdebstrap (apt + dpkg, every script run) and by xarch;
the two trees are compared entry by entry (path, type, mode, owner, link target, xattrs,
file contents). Every difference must be one docs/debian.md lists; a new one fails the
test with its path and what differs.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.support.e2e import EPOCH, _blob, _json, manifests, xarch_ok
from tests.support.needs import need_tool

PACKAGES = ["nginx-light", "python3", "curl", "ca-certificates", "tzdata", "iputils-ping", "mawk",
            "debianutils", "openssl", "libpam-modules", "passwd", "procps", "bash", "coreutils", "perl-base"]
ARCHIVES = [("http://deb.debian.org/debian", "bookworm"),
            ("http://deb.debian.org/debian", "bookworm-updates"),
            ("http://deb.debian.org/debian-security", "bookworm-security")]

# (glob, what differs, why) — the table of docs/debian.md.
KNOWN = [
    (".", "only-mmdebstrap", "mmdebstrap's tar names the root"),
    ("dev/*", "only-mmdebstrap", "device nodes: the runtime provides /dev"),
    ("etc/hostname", "only-mmdebstrap", "written by mmdebstrap; the runtime provides it"),
    ("etc/resolv.conf", "only-mmdebstrap", "written by mmdebstrap; the runtime provides it"),
    ("etc/fstab", "only-mmdebstrap", "written by mmdebstrap"),
    ("etc/apt/sources.list", "only-mmdebstrap", "written by mmdebstrap"),
    ("etc/*-", "only-mmdebstrap", "backups shadow's tools leave"),
    ("etc/.pwd.lock", "only-mmdebstrap", "lock file"),
    ("var/lib/dpkg/*", "only-mmdebstrap", "dpkg's state: scripts, locks, triggers, diversions, -old"),
    ("var/cache/debconf/*", "only-mmdebstrap", "debconf's database: nothing is asked"),
    ("var/lib/apt/*", "only-mmdebstrap", "apt's state"),
    ("var/cache/apt/archives/lock", "only-mmdebstrap", "apt's lock"),
    ("var/log/*", "only-mmdebstrap", "logs"),
    ("var/cache/ldconfig/aux-cache", "only-mmdebstrap", "ldconfig's own cache of inode numbers and times"),
    ("**/__pycache__*", "only-mmdebstrap", "py3compile: bytecode is made at first import"),
    ("var/lib/python*", "only-mmdebstrap", "python3's postinst state"),
    ("etc/python3*", "only-mmdebstrap", "python3-minimal's postinst: reported"),
    ("usr/local/lib/python3*", "only-mmdebstrap", "python3.11-minimal's postinst mkdir: reported"),
    ("etc/rc?.d*", "only-mmdebstrap", "update-rc.d: services do not start in containers"),
    ("etc/systemd/system*", "only-mmdebstrap", "deb-systemd-helper: services do not start in containers"),
    ("var/lib/systemd*", "only-mmdebstrap", "deb-systemd-helper's state"),
    ("etc/nginx/*-enabled*", "only-mmdebstrap", "nginx's postinst links: reported"),
    ("var/www*", "only-mmdebstrap", "nginx-common's postinst copy: reported"),
    ("etc/environment", "only-mmdebstrap", "libpam-modules' postinst touch: reported"),
    ("etc/security/opasswd", "only-mmdebstrap", "libpam-modules' postinst touch: reported"),
    ("etc/sub[ug]id", "only-mmdebstrap", "login's postinst touch: reported"),
    ("etc/shadow", "content", "last-change day: the build epoch's, not the day of the build"),
    ("etc/shells", "content", "same shells; apt runs update-shells several times, xarch once"),
    ("var/lib/dpkg/status", "content", "a Description's trailing space (python-debian strips it)"),
    ("usr/bin/*", "link", "hard-link target written ./usr/… by mmdebstrap's tar, usr/… by xarch"),
    ("usr/bin/uncompress", "type,link,content", "a hard link in the .deb; mmdebstrap's tar stores a copy"),
    ("var/cache/apt/archives/partial", "mode,uid", "apt's postinst chown _apt/chmod 700: reported"),
    ("var/lib/apt/lists/partial", "mode,uid", "apt's postinst chown _apt/chmod 700: reported"),
    ("var/log/nginx", "gid", "nginx-common's postinst chown root:adm: reported"),
]


def _entries(tar: tarfile.TarFile) -> dict[str, tuple[object, ...]]:
    kinds = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
             tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink"}
    found: dict[str, tuple[object, ...]] = {}
    for info in tar:
        name = info.name.removeprefix("./").rstrip("/") or "."
        extracted = tar.extractfile(info) if info.isfile() else None
        digest = hashlib.sha256(extracted.read()).hexdigest() if extracted else ""
        xattrs = tuple(sorted((k, v) for k, v in info.pax_headers.items() if k.startswith("SCHILY.xattr.")))
        found[name] = (kinds.get(info.type, "other"), info.mode & 0o7777, info.uid, info.gid, info.linkname,
                       digest, xattrs)
    return found


Entries = dict[str, tuple[object, ...]]


def differences(reference: Entries, ours: Entries) -> list[tuple[str, str]]:
    """(path, what differs) for every entry that is not the same in both trees."""
    fields = ("type", "mode", "uid", "gid", "link", "content", "xattrs")
    out = [(path, "only-mmdebstrap") for path in sorted(set(reference) - set(ours))]
    out += [(path, "only-xarch") for path in sorted(set(ours) - set(reference))]
    for path in sorted(set(reference) & set(ours)):
        differ = [f for f, a, b in zip(fields, reference[path], ours[path], strict=True) if a != b]
        if differ:
            out.append((path, ",".join(differ)))
    return out


def _known(path: str, what: str) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) and what == kind for pattern, kind, _ in KNOWN)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["amd64", pytest.param("arm64", marks=pytest.mark.qemu)])
def test_xarch_matches_mmdebstrap_but_for_the_documented_differences(tmp_path: Path, arch: str) -> None:
    mmdebstrap = need_tool("mmdebstrap")
    need_tool("gpgv")
    reference = tmp_path / "mmdebstrap.tar"
    subprocess.run([mmdebstrap, "--quiet", "--mode=auto", f"--architectures={arch}", "--variant=apt",
                    f"--include={','.join(PACKAGES)}", "bookworm", str(reference),
                    *(f"deb {url} {suite} main" for url, suite in ARCHIVES)], check=True, timeout=1800)
    with tarfile.open(reference) as tar:
        status = tar.extractfile("./var/lib/dpkg/status").read().decode()  # type: ignore[union-attr]
        theirs = _entries(tar)
    installed = sorted(line.split(": ", 1)[1] for line in status.splitlines() if line.startswith("Package: "))
    project = tmp_path / "project"
    project.mkdir()
    archives = "\n".join(f"    - {{mirror: {url}, suites: [{suite}]}}" for url, suite in ARCHIVES)
    (project / "xarch.yaml").write_text(
        f"name: reference\nplatforms: [{arch}]\nepoch: {EPOCH}\n"
        f"sources:\n  debian:\n{archives}\npackages: [{', '.join(installed)}]\n")
    out = tmp_path / "out"
    xarch_ok("build", "-f", str(project / "xarch.yaml"), "-o", f"oci:{out}", cache=tmp_path / "cache")
    ours: dict[str, tuple[object, ...]] = {}
    for layer in _json(out, manifests(out)[arch])["layers"]:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(_blob(out, layer["digest"])))) as tar:
            ours.update(_entries(tar))
    unexplained = [(path, what) for path, what in differences(theirs, ours) if not _known(path, what)]
    assert unexplained == [], "\n".join(f"{what}: /{path}" for path, what in unexplained)
