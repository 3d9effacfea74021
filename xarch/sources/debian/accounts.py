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
    """The non-blank lines of PATH in TREE (DEFAULT when the image has no such file).
    Raises UnicodeDecodeError (a ValueError) when the file is not UTF-8."""
    entry = tree.get(path)
    if entry is None or entry.type != "file":
        return list(default)
    return [line for line in entry.read().decode("utf-8").splitlines() if line.strip()]


def shadow_gid(group_rows: list[str]) -> int:
    """The gid of the `shadow` group among GROUP_ROWS (/etc/group lines `name:password:gid:members`,
    group(5)); 0 (root) when there is none. Raises IndexError or ValueError for a `shadow`
    row without a numeric gid field."""
    return next((int(r.split(":")[2]) for r in group_rows if r.startswith("shadow:")), 0)


def write(tree: Tree, path: str, lines: list[str], epoch: int | None, mode: int = 0o644, gid: int = 0) -> str:
    """Put file PATH into TREE: LINES, each ended by a newline, UTF-8; owner root:GID, MODE,
    mtime EPOCH (seconds since 1970; None: the epoch, as Entry); missing parent folders made 0755.
    Returns the image path "/PATH". Raises TreeError (exit 2) for a PATH that climbs out of the root."""
    tree.add_parents(path)
    tree.add(Entry(path, "file", mode, 0, gid, epoch, data="".join(f"{r}\n" for r in lines).encode("utf-8")))
    return "/" + path


def shadow_files(tree: Tree, epoch: int) -> list[str]:
    """What passwd's postinst leaves on a fresh install (module docstring); the image paths
    made. EPOCH: seconds since 1970 (LASTCHANGE is its day). Raises UnicodeDecodeError (a
    ValueError) when one of the four files is not UTF-8, and IndexError or ValueError when
    the `shadow` row of /etc/group has no numeric gid."""
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


# adduser.conf's defaults (adduser 3.134, bookworm) for --system accounts.
FIRST_SYSTEM_ID = 100
LAST_SYSTEM_ID = 999
NOGROUP_GID = 65534
SYSTEM_SHELL = "/usr/sbin/nologin"
SYSTEM_HOME = "/nonexistent"
_ADDUSER_FLAGS = {"--quiet", "-q", "--force-badname", "--allow-badname", "--disabled-password",
                  "--disabled-login", "--no-create-home", "--system", "--group", "--debug", "--verbose"}
_ADDUSER_VALUES = {"--home", "--shell", "--uid", "--gid", "--ingroup", "--gecos", "--comment", "--firstuid",
                   "--lastuid", "--add-extra-groups", "--conf"}


class AccountCallError(ValueError):
    """An adduser/addgroup call this module does not reproduce; the message says why."""


def _free_id(taken: set[int]) -> int:
    for number in range(FIRST_SYSTEM_ID, LAST_SYSTEM_ID + 1):
        if number not in taken:
            return number
    raise AccountCallError("no free system id left in 100-999")


def _ids(table: list[str], column: int) -> set[int]:
    found = set()
    for row in table:
        fields = row.split(":")
        if len(fields) > column and fields[column].isascii() and fields[column].isdigit():
            found.add(int(fields[column]))
    return found


def add_system_account(tree: Tree, words: tuple[str, ...], epoch: int | None) -> list[str]:
    """Reproduce `adduser --system …` or `addgroup --system …` (WORDS) as adduser does on a
    fresh system: an existing name is left alone; a new one gets the first id free in
    100-999; a user's group is its own with --group (the user's id when free), the named
    one with --ingroup/--gid,
    else nogroup (65534); home /nonexistent and shell /usr/sbin/nologin unless given; a
    home other than /nonexistent is made (user:group, 0755) unless --no-create-home.
    Returns the image paths written. Raises AccountCallError for any other shape, ValueError
    for a --uid or --gid that is not a number or an /etc/passwd or /etc/group that is not
    UTF-8 (effects.py reports both as not reproduced).
    """
    command = words[0].rsplit("/", 1)[-1]
    options: dict[str, str] = {}
    flags: set[str] = set()
    names: list[str] = []
    rest = list(words[1:])
    while rest:
        word = rest.pop(0)
        if "=" in word and word.split("=", 1)[0] in _ADDUSER_VALUES:
            key, value = word.split("=", 1)
            options[key] = value
        elif word in _ADDUSER_VALUES:
            if not rest:
                raise AccountCallError(f"{word} needs a value")
            options[word] = rest.pop(0)
        elif word in _ADDUSER_FLAGS:
            flags.add(word)
        elif word.startswith("-"):
            raise AccountCallError(f"option {word} is not reproduced")
        else:
            names.append(word)
    if "--system" not in flags:
        raise AccountCallError("only --system accounts are made at install time")
    passwd = rows(tree, "etc/passwd", (DEFAULT_PASSWD,))
    group = rows(tree, "etc/group", DEFAULT_GROUP)
    if command == "addgroup":
        if len(names) != 1:
            raise AccountCallError("addgroup --system needs one NAME")
        name = names[0]
        if not any(r.split(":")[0] == name for r in group):
            gid = int(options["--gid"]) if "--gid" in options else _free_id(_ids(group, 2))
            group.append(f"{name}:x:{gid}:")
        return [write(tree, "etc/group", group, epoch)]
    if command != "adduser":
        raise AccountCallError(f"{command} is not reproduced")
    if len(names) == 2 and not flags & {"--group"} and not options:
        raise AccountCallError("adduser USER GROUP (adding a member) is not reproduced")
    if len(names) != 1:
        raise AccountCallError("adduser --system needs one USER")
    name = names[0]
    if any(r.split(":")[0] == name for r in passwd):
        return []
    uid = int(options["--uid"]) if "--uid" in options else _free_id(_ids(passwd, 2))
    made = []
    if "--group" in flags:
        existing = next((r for r in group if r.split(":")[0] == name), None)
        if existing is None:
            taken = _ids(group, 2)
            gid = uid if uid not in taken else _free_id(taken)
            group.append(f"{name}:x:{gid}:")
            made.append(write(tree, "etc/group", group, epoch))
        else:
            gid = int(existing.split(":")[2])
    elif "--ingroup" in options:
        row = next((r for r in group if r.split(":")[0] == options["--ingroup"]), None)
        if row is None:
            raise AccountCallError(f"group {options['--ingroup']} does not exist")
        gid = int(row.split(":")[2])
    elif "--gid" in options:
        gid = int(options["--gid"])
    else:
        gid = NOGROUP_GID
    home = options.get("--home", SYSTEM_HOME)
    shell = options.get("--shell", SYSTEM_SHELL)
    gecos = options.get("--gecos", options.get("--comment", ""))
    for value in (home, shell, gecos):
        if ":" in value or "\n" in value:
            raise AccountCallError(f"{value!r} may not hold ':' or a newline")
    passwd.append(f"{name}:x:{uid}:{gid}:{gecos}:{home}:{shell}")
    made.append(write(tree, "etc/passwd", passwd, epoch))
    shadow = rows(tree, "etc/shadow")
    if shadow or "etc/shadow" in tree:
        day = "" if epoch is None else str(epoch // 86400)
        shadow.append(f"{name}:*:{day}:0:99999:7:::")
        made.append(write(tree, "etc/shadow", shadow, epoch, 0o640, shadow_gid(group)))
    if home != SYSTEM_HOME and "--no-create-home" not in flags and home.strip("/") not in tree:
        tree.add_parents(home)
        tree.add(Entry(home.strip("/"), "dir", 0o755, uid, gid, epoch))
        made.append(home)
    return made
