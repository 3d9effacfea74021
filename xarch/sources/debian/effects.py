"""Maintainer-script effects, reproduced without running a script.

Called once from install_packages after every package is unpacked. For each package,
in lock order, its preinst and postinst are read as text (xarch.sources.debian.scripts)
as dpkg would run them for a fresh install ("install" then "configure"):

- `update-alternatives --install/--remove` → xarch.sources.debian.alternatives;
- `setcap TEXT FILE` → the file's security.capability xattr (capabilities.from_text);
  `setcap -r FILE` removes it. iputils-ping's postinst takes its setcap branch, as on a
  system with libcap2-bin; without it, it would make ping setuid root instead;
- passwd's `groupadd -g 42 shadow` and `shadowconfig on` → /etc/shadow and /etc/gshadow
  (accounts.shadow_files);
- `adduser --system …` and `addgroup --system …` → system users and groups
  (accounts.add_system_account): ids as adduser gives them on a fresh system, the first
  free from 100, packages taken in lock order (by name), each script's calls in text order;
- `ldconfig` (libc-bin's postinst and trigger) → /etc/ld.so.cache, once, after every
  package is in (xarch.sources.debian.ldconfig);
- `pam-auth-update` (libpam-runtime's postinst, and packages shipping a profile) →
  /etc/pam.d/common-* and /var/lib/pam/*, once, from every profile
  (xarch.sources.debian.pamconfigs);

Every other command from EFFECT_COMMANDS that a script calls, and every call above this
module cannot read (words that need the script's variables, options it does not
reproduce), is reported per package: `-v` prints each, and the build prints one summary
line naming the packages. Packages in HANDLED are reproduced whole elsewhere
(install.py: base-passwd, ca-certificates, tzdata; basefiles.py) or have nothing to do on a merged-/usr
image made fresh (usrmerge, dpkg's own admin-dir upgrades); debianutils' /etc/shells and
`update-shells` are `etc_shells` here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from xarch.oci.tree import Entry, Tree
from xarch.sources.debian import capabilities
from xarch.sources.debian.accounts import AccountCallError, add_system_account, shadow_files
from xarch.sources.debian.alternatives import Alternatives, CallError, Install, Remove, parse_call
from xarch.sources.debian.basefiles import base_files, copy_defaults
from xarch.sources.debian.certhash import rehash_links
from xarch.sources.debian.deb import Deb, resolve
from xarch.sources.debian.errors import UnpackError
from xarch.sources.debian.ldconfig import LdconfigUnsupported, write_cache
from xarch.sources.debian.pamconfigs import PamConfigError, pam_auth_update
from xarch.sources.debian.scripts import Command, commands

# Scripts in the order dpkg runs them on a fresh install.
FRESH_INSTALL_SCRIPTS = ("preinst", "postinst")
# Commands whose effect on the image matters and that xarch does not reproduce.
EFFECT_COMMANDS = frozenset({
    "adduser", "addgroup", "useradd", "groupadd", "usermod", "groupmod", "chown", "chgrp", "chmod",
    "dpkg-statoverride", "ln", "mkdir", "install", "cp", "mv", "touch", "dpkg-divert", "ldconfig",
    "update-ca-certificates", "py3compile", "pycompile", "systemd-sysusers", "systemd-tmpfiles",
    "ucf", "ucfr", "update-passwd", "pam-auth-update", "shadowconfig", "pwconv", "grpconv",
    "add-shell", "update-shells", "locale-gen", "update-locale", "update-alternatives", "setcap",
    "make-ssl-cert", "update-mime-database", "glib-compile-schemas", "gdk-pixbuf-query-loaders",
})
# libc-bin's postinst and trigger (`ldconfig -r "$DPKG_ROOT/"`), older packages' postinsts.
LDCONFIG_CALLS = frozenset({("ldconfig",), ("ldconfig", "-r", "/"), ("ldconfig", "--verbose", "-r", "/")})
HANDLED = frozenset({"base-files", "base-passwd", "ca-certificates", "tzdata", "usrmerge", "dpkg", "passwd",
                     "debianutils", "readline-common"})


@dataclass
class Effects:
    """What reproduce did: GENERATED, the image paths it wrote ("/etc/shadow"), and
    NOT_REPRODUCED, (package, script, what would have run) for each effect it could not."""

    generated: list[str] = field(default_factory=list)  # image paths made
    not_reproduced: list[tuple[str, str, str]] = field(default_factory=list)  # (package, script, what)

    def packages(self) -> list[str]:
        """The names of the packages with an effect not reproduced, sorted, each once."""
        return sorted({package for package, _, _ in self.not_reproduced})

    def summary(self) -> str | None:
        """The one line a build prints without --show-scripts, or None when every effect was reproduced."""
        names = self.packages()
        if not names:
            return None
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        have = "packages have" if len(names) != 1 else "package has"
        return (f"{len(names)} {have} maintainer-script effects "
                f"xarch does not reproduce: {shown}; see --show-scripts")


def reproduce(tree: Tree, debs: Iterable[tuple[str, Deb]], epoch: int) -> Effects:
    """Apply the effects of the (package name, Deb) pairs' scripts to TREE (see module doc),
    mtime EPOCH (seconds since 1970). A call it cannot reproduce is recorded in
    Effects.not_reproduced, not raised; ValueError escapes when /etc/passwd, group, shadow or
    gshadow is not UTF-8, or /etc/group's `shadow` row has no numeric gid (accounts.py)."""
    effects = Effects()
    alternatives = Alternatives()
    names: set[str] = set()
    libc_bin: Deb | None = None
    ldconfig_callers: list[tuple[str, str]] = []
    pam_callers: list[tuple[str, str, str]] = []
    for name, deb in debs:
        names.add(name)
        if name == "libc-bin":
            libc_bin = deb
        for script in FRESH_INSTALL_SCRIPTS:
            if script not in deb.control_files:
                continue
            capped: set[str] = set()
            for command in commands(deb.control_files[script]):
                if command.resolved and command.words in LDCONFIG_CALLS:
                    ldconfig_callers.append((name, script))
                    continue  # reproduced once every package is in, below
                if command.name == "pam-auth-update":
                    pam_callers.append((name, script, str(command)))
                    continue  # likewise: its end state depends on every profile
                if command.name == "chmod" and command.words[1:2] in (("u-s",), ("u+s",)) \
                        and command.words[-1] in capped:
                    continue  # the setuid fallback of a setcap that xarch made (iputils-ping)
                problem = _apply(tree, alternatives, command, name, epoch)
                if command.name == "setcap" and problem is None:
                    capped.add(command.words[-1])
                if problem is not None and name not in HANDLED \
                        and (name, script, problem) not in effects.not_reproduced:
                    effects.not_reproduced.append((name, script, problem))
    for package, alt_name, path in alternatives.missing(tree):
        lost = f"alternative {alt_name}: {path} is not in the image"
        effects.not_reproduced.append((package, "postinst", lost))
    effects.generated += alternatives.apply(tree, epoch)
    if "passwd" in names:
        effects.generated += shadow_files(tree, epoch)
    if "ca-certificates" in names:
        effects.generated += _ca_hash_links(tree, epoch)
    if "base-files" in names:
        effects.generated += base_files(tree, epoch)
    effects.generated += copy_defaults(tree, names, epoch)
    if "debianutils" in names:
        effects.generated += etc_shells(tree, epoch)
    if libc_bin is not None:
        # libc-bin's postinst and the `ldconfig` trigger of every library package: once,
        # after every file is in place (xarch.sources.debian.ldconfig).
        try:
            effects.generated += write_cache(tree, libc_bin.control.get("Architecture", ""),
                                             libc_bin.control.get("Version", ""), epoch)
        except LdconfigUnsupported as error:
            effects.not_reproduced.append(("libc-bin", "postinst", f"would run ldconfig ({error})"))
    else:
        for package, script in ldconfig_callers:
            effects.not_reproduced.append((package, script, "would run ldconfig (libc-bin, which has it, "
                                                            "is not installed)"))
    if "libpam-runtime" in names:
        try:
            effects.generated += pam_auth_update(tree, epoch)
        except PamConfigError as error:
            pam_callers = pam_callers or [("libpam-runtime", "postinst", "pam-auth-update")]
            for package, script, call in pam_callers:
                effects.not_reproduced.append((package, script, f"would run {call} ({error})"))
    else:
        for package, script, call in pam_callers:
            lost = f"would run {call} (libpam-runtime, which has it, is not installed)"
            effects.not_reproduced.append((package, script, lost))
    return effects


SHELLS_TEMPLATE = "usr/share/debianutils/shells"
SHELLS_D = "usr/share/debianutils/shells.d"


def etc_shells(tree: Tree, epoch: int) -> list[str]:
    """debianutils' postinst on a fresh system: /etc/shells copied from its template, then
    `update-shells`: every shell of the template and of shells.d/* (files in C order), each
    followed by its path through the image's symlinks when that differs (/bin/sh, then
    /usr/bin/sh on merged /usr), once each; /var/lib/shells.state lists them all."""
    template = tree.get(SHELLS_TEMPLATE)
    if template is None or template.type != "file":
        return []
    sources = [template] + [e for e in tree if e.path.startswith(SHELLS_D + "/") and e.type == "file"
                            and e.path.count("/") == SHELLS_D.count("/") + 1]
    packaged: list[str] = []
    for source in sources:
        for line in source.read().decode("utf-8", "replace").splitlines():
            shell = line.split("#", 1)[0]
            if not shell:
                continue
            packaged.append(shell)
            folder, name = shell.rsplit("/", 1) if "/" in shell else ("", shell)
            try:
                real = "/" + resolve(tree, folder.lstrip("/"), follow_last=True, what=shell) if folder else ""
            except UnpackError:
                real = folder
            if f"{real}/{name}" != shell:
                packaged.append(f"{real}/{name}")
    lines: list[str] = []
    listed: set[str] = set()
    for line in template.read().decode("utf-8", "replace").splitlines():
        shell = line.split("#", 1)[0]
        if not shell or shell not in listed:
            lines.append(line)
            listed.add(shell)
    lines += [shell for shell in packaged if shell not in listed]  # as update-shells: not deduplicated
    made = []
    for path, rows in (("etc/shells", lines), ("var/lib/shells.state", packaged)):
        tree.add_parents(path)
        tree.add(Entry(path, "file", 0o644, mtime=epoch, data="".join(f"{r}\n" for r in rows).encode()))
        made.append("/" + path)
    return made


CERTS = "etc/ssl/certs"


def _ca_hash_links(tree: Tree, epoch: int) -> list[str]:
    """update-ca-certificates' last step, `openssl rehash /etc/ssl/certs`: HASH.0 links to
    each NAME.pem there (certhash.rehash_links), so `openssl verify -CApath` finds issuers."""
    found = []
    for entry in tree:
        if entry.path.startswith(CERTS + "/") and entry.path.count("/") == 3 and entry.path.endswith(".pem"):
            try:
                where = resolve(tree, entry.path, follow_last=True, what=entry.path)
            except UnpackError:
                continue
            target = tree.entries.get(where)
            if target is not None and target.type == "file":
                found.append((entry.path.rsplit("/", 1)[1], target.read()))
    made = []
    if "usr/local/share/ca-certificates" not in tree:  # the postinst's mkdir, for local CAs
        tree.add_parents("usr/local/share/ca-certificates/x")
        tree.add(Entry("usr/local/share/ca-certificates", "dir", 0o755, mtime=epoch))
        made.append("/usr/local/share/ca-certificates")
    for link, name in rehash_links(found):
        tree.add(Entry(f"{CERTS}/{link}", "symlink", 0o777, mtime=epoch, linkname=name))
        made.append(f"/{CERTS}/{link}")
    return made


def _apply(tree: Tree, alternatives: Alternatives, command: Command, package: str, epoch: int) -> str | None:
    """Reproduce COMMAND if it is one this module knows; a sentence when its effect is lost."""
    if command.name not in EFFECT_COMMANDS:
        return None
    if not command.resolved:
        return f"would run {command} (its words need the script's variables)"
    if command.name == "update-alternatives":
        try:
            call = parse_call(command.words)
            if isinstance(call, Install):
                alternatives.install(call, package)
            elif isinstance(call, Remove):
                alternatives.remove(call)
        except CallError as error:
            return f"would run {command} ({error})"
        return None
    if command.name in ("adduser", "addgroup"):
        try:
            add_system_account(tree, command.words, epoch)
        except (AccountCallError, ValueError) as error:
            return f"would run {command} ({error})"
        return None
    if command.name == "setcap":
        try:
            _setcap(tree, command.words[1:])
        except (capabilities.CapabilityError, UnpackError) as error:
            return f"would run {command} ({error})"
        return None
    return f"would run {command}"


def _setcap(tree: Tree, args: tuple[str, ...]) -> None:
    if len(args) != 2:
        raise capabilities.CapabilityError("expected CAPS FILE")
    text, path = args
    where = resolve(tree, path.lstrip("/"), follow_last=True, what=path)
    entry = tree.entries.get(where)
    while entry is not None and entry.type == "hardlink":
        where = entry.linkname
        entry = tree.entries.get(where)
    if entry is None or entry.type != "file":
        raise UnpackError(f"{path} is not a file in the image")
    others = tuple(x for x in entry.xattrs if x[0] != capabilities.XATTR)
    value = () if text == "-r" else ((capabilities.XATTR, capabilities.from_text(text)),)
    tree.entries[where] = replace(entry, xattrs=tuple(sorted(others + value)))
