"""update-alternatives, reproduced: the links and records its `--install` calls leave.

Maintainer scripts register alternatives with (update-alternatives(1)):

    update-alternatives --install LINK NAME PATH PRIORITY [--slave LINK NAME PATH]...

`parse_call` reads that call shape (and `--remove NAME PATH`) from the words of one
script command (xarch.sources.debian.scripts); `Alternatives.apply` writes into a Tree
what dpkg's update-alternatives (1.21, bookworm) writes on a fresh system, every group in
automatic mode:

- the best choice is the one with the highest priority; on a tie the first choice in
  byte order of its path (dpkg sorts choices by path and keeps the first best);
- LINK -> /etc/alternatives/NAME -> PATH, absolute symlinks; each slave likewise when the
  best choice gives it a path that exists, and not at all otherwise (dpkg skips it);
- /var/lib/dpkg/alternatives/NAME: "auto", LINK, then each slave's name and link
  (slaves sorted by name), an empty line, then each choice (sorted by path): its path,
  priority and one line per slave (empty when it has none), then a final empty line;
- a LINK where the image has something other than a symlink is left alone (dpkg
  refuses to replace a real file by a link without --force).

A choice whose PATH is not in the tree is not registered (dpkg fails with "alternative
path … doesn't exist"); the caller reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xarch.oci.tree import Entry, Tree
from xarch.sources.debian.deb import resolve
from xarch.sources.debian.errors import UnpackError

ALTDIR = "etc/alternatives"
ADMINDIR = "var/lib/dpkg/alternatives"
# Options that take no argument and change nothing in what is written.
_NO_EFFECT_FLAGS = {"--quiet", "--verbose", "--debug", "--force"}


class CallError(ValueError):
    """An update-alternatives call this module does not reproduce; the message says why."""


@dataclass(frozen=True)
class Install:
    """`--install LINK NAME PATH PRIORITY [--slave LINK NAME PATH]...` (update-alternatives(1)):
    absolute LINK and PATH, the highest PRIORITY wins; SLAVES as (link, name, path)."""

    link: str
    name: str
    path: str
    priority: int
    slaves: tuple[tuple[str, str, str], ...] = ()  # (link, name, path)


@dataclass(frozen=True)
class Remove:
    """`--remove NAME PATH` (update-alternatives(1)): PATH is no longer a choice of group NAME."""

    name: str
    path: str


def parse_call(words: tuple[str, ...]) -> Install | Remove | None:
    """WORDS of one `update-alternatives …` command → what it registers.

    Returns None for calls that change nothing on a fresh system (--auto, --remove-all
    of a group not made yet is handled by the caller as Remove). Raises CallError for a
    call that would change something this module does not reproduce (--set, --config,
    an unknown option, a priority that is not an integer, a relative link).
    """
    args = list(words[1:])
    while args and args[0] in _NO_EFFECT_FLAGS:
        args.pop(0)
    if not args:
        raise CallError("no action")
    action = args.pop(0)
    if action in ("--auto", "--query", "--display", "--list", "--get-selections"):
        return None  # every group xarch makes is automatic already; queries change nothing
    if action == "--remove":
        if len(args) != 2:
            raise CallError("--remove needs NAME PATH")
        return Remove(args[0], args[1])
    if action != "--install":
        raise CallError(f"{action} is not reproduced")
    if len(args) < 4:
        raise CallError("--install needs LINK NAME PATH PRIORITY")
    link, name, path, priority_text = args[:4]
    try:
        priority = int(priority_text)
    except ValueError:
        raise CallError(f"priority {priority_text!r} is not an integer") from None
    slaves = []
    rest = args[4:]
    while rest:
        option = rest.pop(0)
        if option in _NO_EFFECT_FLAGS:
            continue
        if option != "--slave" or len(rest) < 3:
            raise CallError(f"unexpected {option!r} after --install")
        slaves.append((rest[0], rest[1], rest[2]))
        del rest[:3]
    for one in (link, path, *(s[0] for s in slaves), *(s[2] for s in slaves)):
        if not one.startswith("/"):
            raise CallError(f"{one!r} is not an absolute path")
    return Install(link, name, path, priority, tuple(slaves))


@dataclass
class _Choice:
    path: str
    priority: int
    slaves: dict[str, str]  # slave name -> path
    package: str = ""


@dataclass
class _Group:
    name: str
    link: str
    slave_links: dict[str, str] = field(default_factory=dict)  # slave name -> link
    choices: dict[str, _Choice] = field(default_factory=dict)  # path -> choice

    def best(self) -> _Choice | None:
        best = None
        for path in sorted(self.choices, key=lambda p: p.encode()):
            choice = self.choices[path]
            if best is None or choice.priority > best.priority:
                best = choice
        return best


@dataclass
class Alternatives:
    """The alternatives registered so far, in the order the scripts would run."""

    groups: dict[str, _Group] = field(default_factory=dict)

    def install(self, call: Install, package: str = "") -> None:
        """Register CALL for PACKAGE; a group keeps the master link it was made with (dpkg
        renames the link of an existing group; no bookworm package relies on that): CallError
        when CALL names another link for an existing group."""
        group = self.groups.setdefault(call.name, _Group(call.name, call.link))
        if group.link != call.link:
            raise CallError(f"alternative {call.name} has link {group.link}, not {call.link}")
        for link, name, _ in call.slaves:
            group.slave_links.setdefault(name, link)
        group.choices[call.path] = _Choice(call.path, call.priority, {n: p for _, n, p in call.slaves},
                                            package)

    def remove(self, call: Remove) -> None:
        """Drop choice CALL.path from group CALL.name, and the group once it has no choice
        left; a group or path that was never registered changes nothing."""
        group = self.groups.get(call.name)
        if group is not None:
            group.choices.pop(call.path, None)
            if not group.choices:
                del self.groups[call.name]

    def apply(self, tree: Tree, epoch: int | None) -> list[str]:
        """Write every group's links and administrative file into TREE, mtime EPOCH (seconds
        since 1970); the image paths made. Raises TreeError (exit 2) for a group NAME whose
        `..` climbs out of the image root."""
        made: list[str] = []
        for name in sorted(self.groups, key=lambda n: n.encode()):
            group = self.groups[name]
            best = group.best()
            if best is None:
                continue
            made += _link(tree, group.link, name, best.path, epoch)
            for slave in sorted(group.slave_links, key=lambda n: n.encode()):
                target = best.slaves.get(slave, "")
                if target and _exists(tree, target):
                    made += _link(tree, group.slave_links[slave], slave, target, epoch)
            admin = f"{ADMINDIR}/{name}"
            tree.add_parents(admin)
            tree.add(Entry(admin, "file", 0o644, mtime=epoch, data=admin_file(group)))
            made.append("/" + admin)
        return made

    def missing(self, tree: Tree) -> list[tuple[str, str, str]]:
        """(package, name, path) of choices whose PATH the tree lacks; they are dropped here."""
        gone = []
        for name, group in list(self.groups.items()):
            for path, choice in list(group.choices.items()):
                if not _exists(tree, path):
                    gone.append((choice.package, name, path))
                    self.remove(Remove(name, path))
        return gone


def admin_file(group: _Group) -> bytes:
    """/var/lib/dpkg/alternatives/NAME as dpkg writes it (see the module docstring)."""
    slaves = sorted(group.slave_links, key=lambda n: n.encode())
    lines = ["auto", group.link]
    for slave in slaves:
        lines += [slave, group.slave_links[slave]]
    lines.append("")
    for path in sorted(group.choices, key=lambda p: p.encode()):
        choice = group.choices[path]
        lines += [path, str(choice.priority)]
        lines += [choice.slaves.get(slave, "") for slave in slaves]
    lines.append("")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _exists(tree: Tree, path: str) -> bool:
    try:
        return resolve(tree, path.lstrip("/"), follow_last=True, what=path) in tree.entries
    except UnpackError:
        return False


def _link(tree: Tree, link: str, name: str, target: str, epoch: int | None) -> list[str]:
    """LINK -> /etc/alternatives/NAME -> TARGET; LINK's folders resolved through the
    image's symlinks (on merged /usr, /bin/x is usr/bin/x)."""
    made = []
    alt = f"{ALTDIR}/{name}"
    tree.add_parents(alt)
    tree.add(Entry(alt, "symlink", 0o777, mtime=epoch, linkname=target))
    made.append("/" + alt)
    try:
        where = resolve(tree, link.lstrip("/"), follow_last=False, what=link)
    except UnpackError:
        return made
    existing = tree.entries.get(where)
    if existing is None or existing.type == "symlink":
        tree.add_parents(where)
        tree.add(Entry(where, "symlink", 0o777, mtime=epoch, linkname=f"/{alt}"))
        made.append("/" + where)
    return made
