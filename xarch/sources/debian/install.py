"""Install locked packages into an image tree without running anything from them.

What the skipped maintainer scripts would have made that an image needs is produced
here, deterministically: the dpkg database (so image scanners see the packages), the CA
bundle, /etc/localtime, /etc/passwd and /etc/group. Every skipped script is reported.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from xarch.oci.store import Store
from xarch.oci.tree import Entry, Tree, path_bytes
from xarch.sources.debian.accounts import DEFAULT_GROUP, shadow_gid
from xarch.sources.debian.deb import Deb, PathFilter, read_deb, unpack
from xarch.sources.debian.dpkgdb import dpkg_order
from xarch.sources.debian.effects import Effects, reproduce
from xarch.sources.debian.errors import UnpackError
from xarch.sources.debian.lock import LockedPackage, package_origin

if TYPE_CHECKING:
    from xarch.sources.debian.pkgtrees import PackageTrees

DPKG = "var/lib/dpkg"
INFO_SCRIPTS = ("preinst", "postinst", "prerm", "postrm", "config")  # kept in info/ by dpkg
CA_SOURCE = "usr/share/ca-certificates"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
ZONEINFO_UTC = "/usr/share/zoneinfo/Etc/UTC"


_ACCOUNT_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
NO_HOME = "/nonexistent"


class AccountError(UnpackError):
    """An account the image cannot hold; KIND ("user"/"group"), NAME and FIELD ("name", "uid",
    "gid") say which value, so the recipe loader can name its line."""

    def __init__(self, message: str, kind: str, name: str, field: str) -> None:
        super().__init__(message)
        self.kind, self.name, self.field = kind, name, field


def _check_account(kind: str, name: str, number: int, *fields: str) -> None:
    if not _ACCOUNT_NAME.match(name):
        raise UnpackError(f"accounts: {kind} name {name!r} is not a valid account name")
    if not 0 <= number < 2**31:
        raise UnpackError(f"accounts: {kind} {name} has id {number}, outside 0..2147483647")
    for value in fields:
        if ":" in value or "\n" in value:
            raise UnpackError(f"accounts: {kind} {name}: {value!r} may not contain ':' or a newline")


@dataclass(frozen=True)
class User:
    """One account of /etc/passwd (passwd(5)): NAME, UID, GID, HOME, SHELL, GECOS; checked when made
    (AccountError for a name or field passwd cannot hold)."""

    name: str
    uid: int
    gid: int
    home: str = NO_HOME
    shell: str = "/usr/sbin/nologin"
    gecos: str = ""

    def __post_init__(self) -> None:
        _check_account("user", self.name, self.uid, self.home, self.shell, self.gecos)
        _check_account("user", self.name, self.gid)


@dataclass(frozen=True)
class Group:
    """One group of /etc/group (group(5)): NAME, GID and MEMBERS; checked when made."""

    name: str
    gid: int
    members: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_account("group", self.name, self.gid, *self.members)


@dataclass
class InstallReport:
    """What installing packages left to say: packages installed ("name version (arch)"),
    maintainer scripts not run, files xarch wrote in their place, and their effects not reproduced."""

    installed: list[str] = field(default_factory=list)  # "name version (arch)"
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (package, maintainer script)
    generated: list[str] = field(default_factory=list)  # paths xarch made in the scripts' place
    effects: Effects = field(default_factory=Effects)  # what the scripts would do that xarch did not

    def lines(self) -> list[str]:
        """What `xarch build -v` prints: every script not run, what xarch made instead, and
        what each script would do that xarch did not reproduce."""
        out = [f"not run: {package} {script}" for package, script in self.skipped]
        made = [path for path in self.generated if not path.startswith("/var/lib/dpkg/info/")]
        lost = [f"not reproduced: {package} {script}: {what}"
                for package, script, what in self.effects.not_reproduced]
        return out + [f"made by xarch: {path}" for path in made] + lost


def install_packages(tree: Tree, locked_entries: Iterable[LockedPackage], store: Store, epoch: int,
                     merged_usr: bool = True, path_filter: PathFilter | None = None,
                     native: str | None = None, trees: PackageTrees | None = None) -> InstallReport:
    """Unpack every package (in lock order) into TREE and write what their scripts would have.

    The .debs must be in STORE already (fetch_packages); they were verified on entry.
    PATH_FILTER drops paths as dpkg's --path-exclude does (docs, man pages, locales).
    NATIVE: dpkg's native architecture of the root; packages of any other architecture
    (a multiarch root) are listed in /var/lib/dpkg/arch as dpkg --add-architecture does.
    TREES: the cache of unpacked package trees (xarch.sources.debian.pkgtrees): each data.tar is decompressed
    once, and TREE's files name their cached bytes by path; without it they are read into memory.
    """
    report = InstallReport()
    debs: list[tuple[LockedPackage, Deb, list[str]]] = []
    if merged_usr:
        _usrmerge_links(tree)
    for pkg in locked_entries:
        if not store.has(pkg.sha256):
            raise UnpackError(f"{pkg.label} is not in the store {store.root}; fetch it first")
        what = f"{pkg.name}_{pkg.version}_{pkg.architecture}.deb"
        cached = None
        if trees is not None:
            # The .deb is read only when its tree is not cached yet; the entry keeps its control files.
            cached = trees.get(pkg.sha256, partial(read_deb, store.path(pkg.sha256), what))
            deb = Deb(what, dict(cached.control_files), "", b"")
        else:
            deb = read_deb(store.path(pkg.sha256), what=what)
        control = deb.control
        if control.get("Package") != pkg.name or control.get("Version") != pkg.version:
            raise UnpackError(f"{deb.what}: control says {control.get('Package')} {control.get('Version')}, "
                              f"the lock {pkg.name} {pkg.version}")
        unpacked = unpack(deb, tree, merged_usr=merged_usr, path_filter=path_filter,
                          origin=package_origin(pkg), unpacked=cached)
        debs.append((pkg, deb, unpacked.paths))
        report.installed.append(pkg.label)
        report.skipped += [(pkg.name, script) for script in deb.scripts]
    report.generated += _dpkg_database(tree, debs, epoch)
    foreign = sorted({pkg.architecture for pkg, _, _ in debs} - {"all", native or ""})
    if native is not None and foreign:
        listing = "".join(f"{arch}\n" for arch in [native, *foreign]).encode()
        report.generated.append(_file(tree, f"{DPKG}/arch", listing, epoch))
    names = {pkg.name for pkg, _, _ in debs}
    if "base-passwd" in names:
        report.generated += _base_passwd(tree, epoch)
    if "ca-certificates" in names:
        report.generated += _ca_bundle(tree, epoch)
    if "tzdata" in names:
        report.generated += _localtime(tree, epoch)
    report.effects = reproduce(tree, ((pkg.name, deb) for pkg, deb, _ in debs), epoch)
    report.generated += report.effects.generated
    return report


def _usrmerge_links(tree: Tree) -> None:
    """bin, sbin and lib as links into /usr, as debootstrap/mmdebstrap make them for
    bookworm (whose base-files does not ship them yet)."""
    for top in ("bin", "sbin", "lib"):
        if top not in tree:
            for directory in ("usr", f"usr/{top}"):
                if directory not in tree:
                    tree.add(Entry(directory, "dir", 0o755))
            tree.add(Entry(top, "symlink", 0o777, linkname=f"usr/{top}"))


def _file(tree: Tree, path: str, data: bytes, epoch: int | None, mode: int = 0o644, gid: int = 0) -> str:
    tree.add_parents(path)
    tree.add(Entry(path, "file", mode, 0, gid, epoch, data=data))
    return "/" + path


def _dpkg_database(tree: Tree, debs: list[tuple[LockedPackage, Deb, list[str]]], epoch: int) -> list[str]:
    made = []
    stanzas = []
    # dpkg's status holds one stanza per package and architecture, sorted by name.
    for pkg, deb, paths in sorted(debs, key=lambda item: (item[0].name, item[0].architecture)):
        control = deb.control
        fields: list[tuple[str, str]] = []
        for key, value in control.items():
            fields.append((key, value))
            if key == "Package":
                fields.append(("Status", "install ok installed"))
        conffiles = deb.conffiles
        if conffiles:
            lines = []
            for conffile in conffiles:
                entry = tree.get(conffile)
                shipped = entry is not None and entry.type == "file"
                digest = hashlib.md5(entry.read()).hexdigest() if entry and shipped else "newconffile"
                lines.append(f" {conffile} {digest}")
            fields.insert(_conffiles_position(fields), ("Conffiles", "\n" + "\n".join(lines)))
        stanzas.append("".join(f"{key}: {value}\n" if not value.startswith("\n") else f"{key}:{value}\n"
                               for key, value in dpkg_order(fields)))
        info_name = pkg.name + (f":{pkg.architecture}" if control.get("Multi-Arch") == "same" else "")
        listing = ["/."] + ["/" + p for p in paths]
        # dpkg's .list holds paths as bytes: a name that is not UTF-8 is written as it is.
        listed = path_bytes("\n".join(listing)) + b"\n"
        made.append(_file(tree, f"{DPKG}/info/{info_name}.list", listed, epoch))
        for extra in ("md5sums", "conffiles", "shlibs", "symbols", "triggers", "templates", *INFO_SCRIPTS):
            if extra in deb.control_files:
                # Scripts are kept (0755) as dpkg keeps them: a later `dpkg -r` in a derived
                # image runs prerm/postrm, which undo what effects.py reproduced.
                mode = 0o755 if extra in INFO_SCRIPTS else 0o644
                data = deb.control_files[extra]
                made.append(_file(tree, f"{DPKG}/info/{info_name}.{extra}", data, epoch, mode))
    # dpkg ends every stanza, the last too, with an empty line.
    made.append(_file(tree, f"{DPKG}/status", "".join(s + "\n" for s in stanzas).encode("utf-8"), epoch))
    # dpkg's database format 1 (dpkg >= 1.16.2): info files of Multi-Arch: same packages are
    # named name:arch.*, as above; without this file dpkg reads the old, unqualified names.
    made.append(_file(tree, f"{DPKG}/info/format", b"1\n", epoch))
    return made


def _conffiles_position(fields: list[tuple[str, str]]) -> int:
    """dpkg writes Conffiles just before Description."""
    for index, (key, _) in enumerate(fields):
        if key == "Description":
            return index
    return len(fields)


def _base_passwd(tree: Tree, epoch: int) -> list[str]:
    """base-passwd's preinst copies its master files when /etc/passwd does not exist."""
    made = []
    for name in ("passwd", "group"):
        master = tree.get(f"usr/share/base-passwd/{name}.master")
        if master is not None and f"etc/{name}" not in tree:
            made.append(_file(tree, f"etc/{name}", master.read(), epoch))
    return made


def _ca_bundle(tree: Tree, epoch: int) -> list[str]:
    """What ca-certificates' postinst + update-ca-certificates make, in the same order:
    /etc/ca-certificates.conf lists every certificate (sorted by path bytes), each gets a
    /etc/ssl/certs/<name>.pem link, and the bundle concatenates them, each ending in a
    newline. (The OpenSSL <hash>.0 links are made in effects.py, after this.)"""
    prefix = CA_SOURCE + "/"
    certs = sorted((e.path[len(prefix):] for e in tree if e.path.startswith(prefix)
                    and e.path.endswith(".crt") and e.type == "file"), key=path_bytes)
    # The header ca-certificates' postinst writes (debconf's default: every certificate enabled).
    conf = (
        "# This file lists certificates that you wish to use or to ignore to be\n"
        "# installed in /etc/ssl/certs.\n"
        "# update-ca-certificates(8) will update /etc/ssl/certs by reading this file.\n"
        "#\n"
        "# This is autogenerated by dpkg-reconfigure ca-certificates.\n"
        "# Certificates should be installed under /usr/share/ca-certificates\n"
        "# and files with extension '.crt' is recognized as available certs.\n"
        "#\n"
        "# line begins with # is comment.\n"
        "# line begins with ! is certificate filename to be deselected.\n"
        "#\n"
    )
    conf += "".join(f"{cert}\n" for cert in certs)
    made = [_file(tree, "etc/ca-certificates.conf", path_bytes(conf), epoch)]
    bundle = bytearray()
    for cert in certs:
        data = tree.entries[prefix + cert].read()
        bundle += data if data.endswith(b"\n") or not data else data + b"\n"
        stem = posixpath.basename(cert)[: -len(".crt")]
        pem = stem.replace(" ", "_").replace("(", "=").replace(")", "=").replace(",", "_") + ".pem"
        tree.add_parents(f"etc/ssl/certs/{pem}")
        tree.add(Entry(f"etc/ssl/certs/{pem}", "symlink", 0o777, mtime=epoch, linkname=f"/{prefix}{cert}"))
    made.append(_file(tree, CA_BUNDLE, bytes(bundle), epoch))
    return made


def _localtime(tree: Tree, epoch: int) -> list[str]:
    """tzdata's postinst: UTC unless configured otherwise (images run in UTC)."""
    tree.add_parents("etc/localtime")
    tree.add(Entry("etc/localtime", "symlink", 0o777, mtime=epoch, linkname=ZONEINFO_UTC))
    return ["/etc/localtime", _file(tree, "etc/timezone", b"Etc/UTC\n", epoch)]


def write_accounts(tree: Tree, users: Iterable[User], groups: Iterable[Group],
                   epoch: int | None = None, make_homes: bool = True) -> list[str]:
    """Add the recipe's accounts to /etc/passwd, /etc/group and /etc/shadow (locked
    passwords), keeping what is there (base-passwd's entries) and sorting new ones by id.
    With MAKE_HOMES, a missing home directory is made, owned by its user (mode 0755).

    Without base-passwd the files start with root only.
    """
    passwd = _table(tree, "etc/passwd", "root:x:0:0:root:/root:/bin/sh")
    group = _table(tree, "etc/group", *DEFAULT_GROUP)
    for grp in sorted(groups, key=lambda g: (g.gid, g.name)):
        _add_row(group, "etc/group", "group", grp.name, grp.gid,
                 f"{grp.name}:x:{grp.gid}:{','.join(grp.members)}")
    for user in sorted(users, key=lambda u: (u.uid, u.name)):
        if not any(row.split(":")[2:3] == [str(user.gid)] for row in group):
            raise AccountError(f"accounts: user {user.name} has gid {user.gid}, which no group has",
                               "user", user.name, "gid")
        _add_row(passwd, "etc/passwd", "user", user.name, user.uid,
                 f"{user.name}:x:{user.uid}:{user.gid}:{user.gecos}:{user.home}:{user.shell}")
        if make_homes and user.home not in (NO_HOME, "/") and user.home.strip("/") not in tree:
            tree.add_parents(user.home)
            tree.add(Entry(user.home, "dir", 0o755, user.uid, user.gid, epoch))
    # Rows passwd's postinst made stay; "*": no password can log in; empty ageing fields
    # keep the new rows free of dates.
    known = {r.split(":")[0]: r for r in _table(tree, "etc/shadow")}
    shadow = [known.get(row.split(":")[0]) or f"{row.split(':')[0]}:*:::::::" for row in passwd]
    gid = shadow_gid(group)
    made = [
        _file(tree, "etc/passwd", _lines(passwd), epoch),
        _file(tree, "etc/group", _lines(group), epoch),
        _file(tree, "etc/shadow", _lines(shadow), epoch, mode=0o640, gid=gid),
    ]
    if "etc/gshadow" in tree:
        known = {r.split(":")[0]: r for r in _table(tree, "etc/gshadow")}
        gshadow = [known.get(r.split(":")[0]) or f"{r.split(':')[0]}:!::{r.split(':')[3]}" for r in group]
        made.append(_file(tree, "etc/gshadow", _lines(gshadow), epoch, mode=0o640, gid=gid))
    return made


def _table(tree: Tree, path: str, *default: str) -> list[str]:
    entry = tree.get(path)
    if entry is None or entry.type != "file":
        return list(default)
    return [line for line in entry.read().decode("utf-8").splitlines() if line.strip()]


def _add_row(rows: list[str], path: str, kind: str, name: str, number: int, row: str) -> None:
    for existing in rows:
        fields = existing.split(":")
        if fields[0] == name:
            if existing != row:
                raise AccountError(f"accounts: {name} already exists in /{path} as {existing!r}", kind, name,
                                   "name")
            return
        if len(fields) > 2 and fields[2] == str(number):
            raise AccountError(f"accounts: id {number} of {name} is taken by {fields[0]} in /{path}", kind,
                               name, "uid" if kind == "user" else "gid")
    rows.append(row)


def _lines(rows: list[str]) -> bytes:
    return "".join(row + "\n" for row in rows).encode("utf-8")
