"""/etc/pam.d/common-* as `pam-auth-update` writes them on a fresh system.

libpam-runtime's postinst runs `pam-auth-update --root "$DPKG_ROOT" --package --force`
on a fresh install, and every package that ships a profile in /usr/share/pam-configs
runs `pam-auth-update --package`. With nothing asked (debconf's noninteractive
frontend) and no local edits, their end state is a pure function of the profiles:
every profile with `Default: yes` is enabled. This is a port of that path of
libpam-runtime 1.5.2's /usr/sbin/pam-auth-update (a Perl script that needs debconf, so
it cannot run against an image root without the image's debconf):

- profiles are read as parse_pam_profile does (a `Field:` line, then indented lines
  joined by newlines; `-Final` dropped from a name; a profile naming pam_tally is
  disabled; without `Session-Interactive-Only` the Session fields also serve
  session-noninteractive);
- sorted by Priority (descending), then by name (descending, byte order); a
  profile's `Conflicts` drop the lower one;
- each /etc/pam.d/common-TYPE is /usr/share/pam/common-TYPE with its Primary and
  Additional blocks filled in (create_from_template: `end` in a control becomes the
  number of lines left in the block, the first module of a block takes its `-Initial`
  lines, an empty Primary block is one `[default=1] pam_permit.so` line, every line is
  `TYPE<TAB>control module` + " " + options joined by one space);
- /var/lib/pam/TYPE records the blocks (write_profiles), /var/lib/pam/seen every
  profile name.

Checked against mmdebstrap (which runs the real script) in tests/integration/test_debian_mmdebstrap.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from xarch.oci.tree import Entry, Tree

PROFILES = "usr/share/pam-configs"
TEMPLATES = "usr/share/pam"
TYPES = ("auth", "account", "password", "session", "session-noninteractive")
INVALID_MODULES = ("pam_tally",)
PRIMARY = re.compile(rb'^# here are the per-package modules \(the "Primary" block\)')
FALLBACK = re.compile(rb"^# here's the fallback if no module succeeds")
ADDITIONAL = re.compile(rb'^# and here are more per-package modules \(the "Additional" block\)')
END = re.compile(rb"^# end of pam-auth-update config")
LINE = re.compile(r"^((\[[^]]+\]|\w+)\s+\S+)\s*(.*)")


class PamConfigError(ValueError):
    """A template or profile this port cannot read the way the script would."""


@dataclass
class Profile:
    """One /usr/share/pam-configs profile as parse_pam_profile reads it: FIELDS {name: value,
    continuation lines joined by newlines}, CONFLICTS (profile names), DISABLED (names pam_tally)."""

    fields: dict[str, str] = field(default_factory=dict)
    conflicts: set[str] = field(default_factory=set)
    disabled: bool = False

    def priority(self) -> int:
        """The Priority field as Perl reads a number (its leading integer, else 0); higher first."""
        match = re.match(r"\s*[+-]?\d+", self.fields.get("Priority", ""))  # Perl's numeric reading
        return int(match.group()) if match else 0

    def lines(self, uctype: str, position: int) -> str:
        """lines_for_module_and_type: the -Initial lines for the first module of a block."""
        initial = self.fields.get(f"{uctype}-Initial", "")
        if position == 0 and initial:
            return initial
        return self.fields.get(uctype, "")


def parse_profile(text: str) -> Profile:
    """parse_pam_profile."""
    profile = Profile()
    name = ""
    for line in text.splitlines():
        match = re.match(r"^(\S+):\s+(.*)\s*$", line + "\n")
        if match:
            name = re.sub(r"-Final$", "", match.group(1))
            value = match.group(2).rstrip("\n")
            if name == "Conflicts":
                profile.conflicts |= set(value.split(", "))
            else:
                profile.fields[name] = value
            continue
        stripped = line.strip()
        if stripped:
            profile.fields[name] = profile.fields.get(name, "") + "\n" + stripped
        if any(module in profile.fields.get(name, "") for module in INVALID_MODULES):
            profile.disabled = True
        if name in profile.fields:
            profile.fields[name] = profile.fields[name].lstrip("\n \t\r\f\v")
    if "Session-Interactive-Only" not in profile.fields:
        for suffix in ("-Type", "", "-Initial"):
            if f"Session{suffix}" in profile.fields:
                profile.fields[f"Session-noninteractive{suffix}"] = profile.fields[f"Session{suffix}"]
    return profile


def enabled_profiles(profiles: dict[str, Profile]) -> list[str]:
    """Every `Default: yes` profile, in the script's order, conflicts removed."""
    def order(names: list[str]) -> list[str]:
        by_name = sorted(names, key=lambda n: n.encode(), reverse=True)
        return sorted(by_name, key=lambda n: -profiles[n].priority())  # stable: name order kept

    enabled = order([n for n in profiles if profiles[n].fields.get("Default") == "yes"])
    for elem in list(enabled):
        if elem not in enabled:
            continue
        enabled = [other for other in enabled if other not in profiles[elem].conflicts]
    return enabled


def _merge_one_line(line: str, count: int) -> str:
    match = LINE.match(line)
    if match is None:
        raise PamConfigError(f"profile line {line!r} is not 'control module [options]'")
    modline = match.group(1).replace("end", str(count))
    options = [o for o in re.split(r"\s+", match.group(3)) if o] if match.group(3) else []
    return modline + " " + " ".join(options) + "\n"


def _block(profiles: dict[str, Profile], enabled: list[str], kind: str, uctype: str,
           prefix: str) -> list[str]:
    chosen = [n for n in enabled if profiles[n].fields.get(f"{uctype}-Type") == kind]
    outputs = [profiles[name].lines(uctype, position) for position, name in enumerate(chosen)]
    count = sum(len([part for part in re.split(r"\n+", text) if part]) for text in outputs)
    if kind == "Additional":
        count -= 1
    out = []
    if kind == "Primary" and count == 0:
        out.append(f"{prefix}\t[default=1]\t\t\tpam_permit.so\n")
    for text in outputs:
        for line in text.split("\n") if text else []:
            out.append(f"{prefix}\t{_merge_one_line(line, count)}")
            count -= 1
    return out


def common_file(template: bytes, profiles: dict[str, Profile], enabled: list[str], kind: str) -> bytes:
    """create_from_template for one TYPE (auth, …, session-noninteractive): TEMPLATE's bytes
    with the Primary and Additional blocks of the ENABLED PROFILES filled in. Raises
    PamConfigError when TEMPLATE lacks pam-auth-update's markers or a profile line is not
    `control module [options]`."""
    uctype = kind[:1].upper() + kind[1:]
    prefix = kind.replace("-noninteractive", "")
    out: list[bytes] = []
    state = 0
    for line in template.splitlines(keepends=True):
        if state == 1:
            if FALLBACK.match(line):
                out.append(line)
                state += 1
            continue
        if state == 3:
            if END.match(line):
                out.append(line)
                state += 1
            continue
        out.append(line)
        if state in (0, 2) and (PRIMARY if state == 0 else ADDITIONAL).match(line):
            block = _block(profiles, enabled, "Primary" if state == 0 else "Additional", uctype, prefix)
            out += [text.encode() for text in block]
            state += 1
    if state < 4:
        raise PamConfigError(f"/{TEMPLATES}/common-{kind} lacks pam-auth-update's markers")
    return b"".join(out)


def saved_state(profiles: dict[str, Profile], enabled: list[str], kind: str) -> bytes:
    """/var/lib/pam/TYPE as write_profiles writes it."""
    uctype = kind[:1].upper() + kind[1:]
    out = []
    for primary in (True, False):
        position = 0
        for name in enabled:
            block = profiles[name].fields.get(f"{uctype}-Type")
            if not block or block == ("Additional" if primary else "Primary"):
                continue
            text = profiles[name].lines(uctype, position)
            position += 1
            if text:
                out.append(f"Module: {name}\n{text}\n")
        if primary and position == 0:
            out.append("Module: null\n[default=1]\t\t\tpam_permit.so\n")
    return "".join(out).encode()


def pam_auth_update(tree: Tree, epoch: int) -> list[str]:
    """Write /etc/pam.d/common-* and /var/lib/pam/* into TREE; the image paths made.
    PamConfigError when a template or profile cannot be read as the script reads it."""
    prefix = PROFILES + "/"
    profiles: dict[str, Profile] = {}
    for entry in tree:
        name = entry.path[len(prefix):]
        if not entry.path.startswith(prefix) or "/" in name or entry.type != "file":
            continue
        if name.endswith("~") or (name.startswith("#") and name.endswith("#") and len(name) > 2):
            continue
        profile = parse_profile(entry.read().decode("utf-8", "surrogateescape"))
        if not profile.disabled:
            profiles[name] = profile
    enabled = enabled_profiles(profiles)
    made = []
    for kind in TYPES:
        template = tree.get(f"{TEMPLATES}/common-{kind}")
        if template is None or template.type != "file":
            raise PamConfigError(f"/{TEMPLATES}/common-{kind} is not in the image")
        data = common_file(template.read(), profiles, enabled, kind)
        made.append(_write(tree, f"etc/pam.d/common-{kind}", data, epoch))
        made.append(_write(tree, f"var/lib/pam/{kind}", saved_state(profiles, enabled, kind), epoch))
    seen = sorted(profiles, key=lambda n: n.encode(), reverse=True)
    seen = sorted(seen, key=lambda n: -profiles[n].priority())
    made.append(_write(tree, "var/lib/pam/seen", "".join(f"{n}\n" for n in seen).encode(), epoch))
    return made


def _write(tree: Tree, path: str, data: bytes, epoch: int) -> str:
    tree.add_parents(path)
    tree.add(Entry(path, "file", 0o644, mtime=epoch, data=data))
    return "/" + path
