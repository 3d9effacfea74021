"""/etc/shadow and /etc/gshadow as Debian's passwd package makes them.

passwd's postinst runs `groupadd -g 42 shadow` (gid 42 is allocated to shadow by
base-passwd) and, on a new install, `shadowconfig on`, i.e. pwconv and grpconv:

- /etc/shadow gets one row per /etc/passwd row, `NAME:PASSWORD:LASTCHANGE:0:99999:7:::`,
  where PASSWORD is what /etc/passwd held (base-passwd's `*`) and /etc/passwd then holds
  `x`; LASTCHANGE is in days since 1970 — the build epoch's day, as shadow does under
  SOURCE_DATE_EPOCH, so the file is reproducible;
- /etc/gshadow gets `NAME:PASSWORD::MEMBERS` per /etc/group row, /etc/group then `x`;
- both are root:shadow 0640.
"""

from __future__ import annotations

from xarch.oci.tree import Entry, Tree

SHADOW_GID = 42
DEFAULT_PASSWD = "root:x:0:0:root:/root:/bin/sh"
DEFAULT_GROUP = ("root:x:0:", f"shadow:x:{SHADOW_GID}:")


def rows(tree: Tree, path: str, default: tuple[str, ...] = ()) -> list[str]:
    """The lines of PATH in TREE (DEFAULT when the image has no such file)."""
    entry = tree.get(path)
    if entry is None or entry.type != "file":
        return list(default)
    return [line for line in entry.read().decode("utf-8").splitlines() if line.strip()]


def shadow_gid(group_rows: list[str]) -> int:
    return next((int(r.split(":")[2]) for r in group_rows if r.startswith("shadow:")), 0)


def write(tree: Tree, path: str, lines: list[str], epoch: int | None, mode: int = 0o644, gid: int = 0) -> str:
    tree.add_parents(path)
    tree.add(Entry(path, "file", mode, 0, gid, epoch, data="".join(f"{r}\n" for r in lines).encode("utf-8")))
    return "/" + path


def shadow_files(tree: Tree, epoch: int) -> list[str]:
    """What passwd's postinst leaves on a fresh install (module docstring); paths made."""
    passwd = rows(tree, "etc/passwd", (DEFAULT_PASSWD,))
    group = rows(tree, "etc/group", DEFAULT_GROUP)
    if not any(r.startswith("shadow:") for r in group):
        group.append(f"shadow:x:{SHADOW_GID}:")
    known = {r.split(":")[0]: r for r in rows(tree, "etc/shadow")}
    known_groups = {r.split(":")[0]: r for r in rows(tree, "etc/gshadow")}
    day = epoch // 86400
    shadow, gshadow = [], []
    for index, row in enumerate(passwd):
        fields = row.split(":")
        name, password = fields[0], fields[1] if len(fields) > 1 else "*"
        hidden = "*" if password in ("x", "") else password
        shadow.append(known.get(name) or f"{name}:{hidden}:{day}:0:99999:7:::")
        passwd[index] = ":".join([name, "x", *fields[2:]])
    for index, row in enumerate(group):
        fields = row.split(":")
        name, password = fields[0], fields[1] if len(fields) > 1 else "*"
        members = fields[3] if len(fields) > 3 else ""
        hidden = "*" if password in ("x", "") else password
        gshadow.append(known_groups.get(name) or f"{name}:{hidden}::{members}")
        group[index] = ":".join([name, "x", *fields[2:]])
    gid = shadow_gid(group)
    return [
        write(tree, "etc/passwd", passwd, epoch),
        write(tree, "etc/group", group, epoch),
        write(tree, "etc/shadow", shadow, epoch, 0o640, gid),
        write(tree, "etc/gshadow", gshadow, epoch, 0o640, gid),
    ]
