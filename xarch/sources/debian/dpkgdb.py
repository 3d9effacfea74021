"""The order dpkg writes a package's fields in /var/lib/dpkg/status.

dpkg writes the fields it knows in the order of its `fieldinfos` table (lib/dpkg/parse.c,
dpkg 1.21), then every other field (Homepage, Built-Using, …) in the order the package's
control file gives them. Writing the same order makes xarch's status file equal to the
one an apt-installed system has (checked against mmdebstrap, docs/debian.md).
"""

from __future__ import annotations

FIELD_ORDER = (
    "Package", "Essential", "Protected", "Status", "Priority", "Section", "Installed-Size", "Origin",
    "Maintainer", "Bugs", "Architecture", "Multi-Arch", "Source", "Version", "Config-Version", "Replaces",
    "Provides", "Depends", "Pre-Depends", "Recommends", "Suggests", "Breaks", "Conflicts", "Enhances",
    "Conffiles", "Filename", "Size", "MD5sum", "MSDOS-Filename", "Description", "Triggers-Pending",
    "Triggers-Awaited",
)
_RANK = {name.lower(): index for index, name in enumerate(FIELD_ORDER)}


def dpkg_order(fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """FIELDS ((name, value) pairs) in the order dpkg writes them; field names compare
    without case, as dpkg's do."""
    ranked = sorted(enumerate(fields), key=lambda item: (_RANK.get(item[1][0].lower(), len(_RANK)), item[0]))
    return [field for _, field in ranked]
