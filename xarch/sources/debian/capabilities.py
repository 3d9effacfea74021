"""File capabilities as the `security.capability` extended attribute.

`setcap TEXT FILE` in a maintainer script becomes the xattr value the kernel would store
(linux/capability.h, struct vfs_cap_data, revision 2): little-endian u32 magic_etc
(0x02000000, | 1 when the effective flag is set), then permitted and inheritable for
capabilities 0-31 and 32-63: 20 bytes. That is what Docker and BuildKit put in a layer
as the PAX record SCHILY.xattr.security.capability.

The text form is cap_from_text(3)'s: clauses separated by spaces, each a comma list of
capability names (or none, meaning all) followed by one or more operators `=`, `+`, `-`
each with flags from `e`, `i`, `p`. Hand-written: libcap has no maintained Python
binding on PyPI, and the grammar is a dozen lines.
"""

from __future__ import annotations

import re
import struct

XATTR = "security.capability"
REVISION_2 = 0x02000000
REVISION_3 = 0x03000000
REVISION_MASK = 0xFF000000
EFFECTIVE = 0x000001

# linux/capability.h, in number order (0..40).
NAMES = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
    "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
    "ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
    "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
    "lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
    "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
)
_CLAUSE = re.compile(r"^([a-z_0-9,]*)((?:[=+-][eip]*)+)$")
_OPERATION = re.compile(r"([=+-])([eip]*)")


class CapabilityError(ValueError):
    """A cap_from_text(3) text or a security.capability value (struct vfs_cap_data) this
    module cannot read; effects.py reports the setcap call as not reproduced."""


def _bits(names: str) -> int:
    if names in ("", "all"):
        return (1 << len(NAMES)) - 1
    bits = 0
    for name in names.split(","):
        short = name.removeprefix("cap_")
        if short not in NAMES:
            raise CapabilityError(f"unknown capability {name!r}")
        bits |= 1 << NAMES.index(short)
    return bits


def from_text(text: str) -> bytes:
    """cap_from_text(3) TEXT (e.g. "cap_net_raw+ep") → the security.capability value.

    Raises CapabilityError for an unknown name or clause, and for an effective set that
    is neither empty nor all of permitted|inheritable (the kernel stores one effective
    bit, so setcap refuses that too).
    """
    sets = {"e": 0, "i": 0, "p": 0}
    for clause in text.lower().split():
        match = _CLAUSE.match(clause)
        if not match:
            raise CapabilityError(f"cannot read capability clause {clause!r}")
        bits = _bits(match.group(1))
        for operator, flags in _OPERATION.findall(match.group(2)):
            if operator == "=":
                for flag in sets:
                    sets[flag] &= ~bits
            for flag in flags:
                if operator == "-":
                    sets[flag] &= ~bits
                else:
                    sets[flag] |= bits
    if sets["e"] and sets["e"] != sets["p"] | sets["i"]:
        raise CapabilityError(f"{text!r}: the effective set must be empty or all of the others")
    magic = REVISION_2 | (EFFECTIVE if sets["e"] else 0)
    p, i = sets["p"], sets["i"]
    return struct.pack("<5I", magic, p & 0xFFFFFFFF, i & 0xFFFFFFFF, p >> 32, i >> 32)


def portable(value: bytes) -> bytes:
    """VALUE as revision 2: a revision-3 value (written inside a user namespace) carries
    the host uid of that namespace's root, which means nothing in an image; Docker's and
    BuildKit's layers carry revision 2, valid for root of whatever namespace runs it.

    Raises CapabilityError for a value that is not a vfs_cap_data.
    """
    if len(value) < 4:
        raise CapabilityError("security.capability is shorter than its header")
    (magic,) = struct.unpack_from("<I", value)
    revision = magic & REVISION_MASK
    if revision == REVISION_2 and len(value) == 20:
        return value
    if revision == REVISION_3 and len(value) == 24:
        return struct.pack("<I", REVISION_2 | (magic & EFFECTIVE)) + value[4:20]
    raise CapabilityError(f"security.capability revision {revision >> 24} ({len(value)} bytes) "
                          "is not supported")
