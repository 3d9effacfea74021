"""What base-files' postinst (bookworm, 12.4) leaves on a fresh install ("configure" with
no old version), read from the package's own defaults in /usr/share/base-files:

- /root/.profile, /root/.bashrc, /etc/profile, /etc/motd copied from dot.profile,
  dot.bashrc, profile, motd when missing (mode kept: `cp -p`);
- folders mnt srv opt etc/opt var/opt media (0755) and var/mail (2775 root:mail),
  run/lock (1777); var/spool/mail -> ../mail;
- /var/run -> /run and /var/lock -> /run/lock (what packages put below them moves to
  where the link leads, as if base-files had been configured first, as dpkg does);
- /usr/local and its folders (0755; /etc/staff-group-for-usr-local is not shipped), and
  usr/local/man -> share/man;
- /var/log/wtmp and /var/log/lastlog (0664), /var/log/btmp (0660), empty, root:utmp;
- /usr/share/info/dir from info.dir (0644);
- /etc/dpkg/origins/default -> debian.
"""

from __future__ import annotations

from dataclasses import replace

from xarch.oci.tree import Entry, Tree, path_bytes
from xarch.sources.debian.accounts import rows

DEFAULTS = "usr/share/base-files"
LOCAL_DIRS = ("usr/local", "usr/local/share", "usr/local/share/man", "usr/local/bin", "usr/local/games",
              "usr/local/lib", "usr/local/include", "usr/local/sbin", "usr/local/src", "usr/local/etc")


def _gid(tree: Tree, name: str) -> int:
    for row in rows(tree, "etc/group"):
        fields = row.split(":")
        if fields[0] == name and len(fields) > 2 and fields[2].isascii() and fields[2].isdigit():
            return int(fields[2])
    return 0


def _directory(tree: Tree, path: str, mode: int, gid: int, epoch: int, made: list[str]) -> None:
    existing = tree.entries.get(path)
    if existing is None:
        tree.add_parents(path)
        tree.add(Entry(path, "dir", mode, 0, gid, epoch))
        made.append("/" + path)


def _link(tree: Tree, path: str, target: str, epoch: int, made: list[str]) -> None:
    tree.add_parents(path)
    tree.add(Entry(path, "symlink", 0o777, mtime=epoch, linkname=target))
    made.append("/" + path)


def _migrate(tree: Tree, path: str, target: str, epoch: int, made: list[str]) -> None:
    """`rmdir PATH; ln -s TARGET PATH`, with what packages put below PATH moved below TARGET."""
    existing = tree.entries.get(path)
    if existing is not None and existing.type == "symlink":
        return
    prefix = path + "/"
    destination = target.lstrip("/")
    for key in sorted((k for k in tree.entries if k.startswith(prefix)), key=path_bytes):
        moved = destination + "/" + key[len(prefix):]
        if moved not in tree.entries:
            tree.add_parents(moved)
            tree.entries[moved] = replace(tree.entries[key], path=moved)
        del tree.entries[key]
    tree.entries.pop(path, None)
    _link(tree, path, target, epoch, made)


def base_files(tree: Tree, epoch: int) -> list[str]:
    """Apply the module docstring's effects to TREE; the image paths made."""
    made: list[str] = []
    origins = tree.get("etc/dpkg/origins/debian")
    if origins is not None and "etc/dpkg/origins/default" not in tree:
        _link(tree, "etc/dpkg/origins/default", "debian", epoch, made)
    for source, path in (("dot.profile", "root/.profile"), ("dot.bashrc", "root/.bashrc"),
                         ("profile", "etc/profile"), ("motd", "etc/motd")):
        default = tree.get(f"{DEFAULTS}/{source}")
        if default is not None and default.type == "file" and path not in tree:
            tree.add_parents(path)
            tree.add(replace(default, path=path, mtime=epoch))
            made.append("/" + path)
    for path in ("mnt", "srv", "opt", "etc/opt", "var/opt", "media"):
        _directory(tree, path, 0o755, 0, epoch, made)
    _directory(tree, "var/mail", 0o2775, _gid(tree, "mail"), epoch, made)
    if "var/spool/mail" not in tree:
        _link(tree, "var/spool/mail", "../mail", epoch, made)
    _directory(tree, "run/lock", 0o1777, 0, epoch, made)
    _migrate(tree, "var/run", "/run", epoch, made)
    _migrate(tree, "var/lock", "/run/lock", epoch, made)
    for path in LOCAL_DIRS:
        _directory(tree, path, 0o755, 0, epoch, made)
    _link(tree, "usr/local/man", "share/man", epoch, made)
    utmp = _gid(tree, "utmp")
    for path, mode in (("var/log/wtmp", 0o664), ("var/log/btmp", 0o660), ("var/log/lastlog", 0o664)):
        existing = tree.entries.get(path)
        data = existing.read() if existing is not None and existing.type == "file" else b""
        tree.add_parents(path)
        tree.add(Entry(path, "file", mode, 0, utmp, epoch, data=data))
        made.append("/" + path)
    info = tree.get(f"{DEFAULTS}/info.dir")
    if info is not None and "usr/share/info" in tree and "usr/share/info/dir" not in tree \
            and "usr/info/dir" not in tree:
        tree.add(replace(info, path="usr/share/info/dir", mode=0o644, mtime=epoch))
        made.append("/usr/share/info/dir")
    return made


# Other packages' postinsts that copy a shipped default into /etc when it is missing
# (their `install_from_default SRC DST`, `cp -p`): package -> (source, destination).
DEFAULT_COPIES = {
    "libc-bin": (("usr/share/libc-bin/nsswitch.conf", "etc/nsswitch.conf"),),
    "readline-common": (("usr/share/readline/inputrc", "etc/inputrc"),),
}


def copy_defaults(tree: Tree, packages: set[str], epoch: int) -> list[str]:
    """DEFAULT_COPIES of PACKAGES into TREE where the destination is missing; paths made."""
    made = []
    for package in sorted(packages & set(DEFAULT_COPIES)):
        for source, destination in DEFAULT_COPIES[package]:
            default = tree.get(source)
            if default is not None and default.type == "file" and destination not in tree:
                tree.add_parents(destination)
                tree.add(replace(default, path=destination, mtime=epoch))
                made.append("/" + destination)
    return made
