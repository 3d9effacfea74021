"""pam-auth-update's effect, reproduced (xarch.sources.debian.pamconfigs), against the real script.

The real `pam-auth-update --root ROOT --package --force` (what libpam-runtime's postinst
runs on a fresh install) is run with a debconf database of its own, noninteractive, on a
root holding libpam-runtime's templates and profiles: the host's, and made-up ones that
take the script's other paths (a second Primary module, `end` jumps, -Initial lines, a
profile off by default, a pam_tally profile, equal priorities, interactive-only sessions).
The port must write the same bytes. tests/integration/test_debian_mmdebstrap.py checks the same on
the images of 15 common packages.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.needs import need_file, need_tool
from xarch.oci.tree import Entry, Tree
from xarch.sources.debian.pamconfigs import PamConfigError, pam_auth_update

MADE_UP = {
    "krb": """Name: Kerberos
Default: yes
Priority: 704
Auth-Type: Primary
Auth:
\t[success=end default=ignore]\tpam_krb5.so minimum_uid=1000 use_first_pass
Auth-Initial:
\t[success=end default=ignore]\tpam_krb5.so minimum_uid=1000
Account-Type: Additional
Account:
\trequired\t\t\tpam_krb5.so minimum_uid=1000
Session-Type: Additional
Session:
\toptional\t\t\tpam_krb5.so minimum_uid=1000
Password-Type: Primary
Password:
\t[success=end default=ignore]\tpam_krb5.so minimum_uid=1000 try_first_pass use_authtok
Password-Initial:
\t[success=end default=ignore]\tpam_krb5.so minimum_uid=1000
""",
    "zz-off": """Name: Off by default
Default: no
Priority: 900
Auth-Type: Primary
Auth:
\t[success=end default=ignore]\tpam_off.so
""",
    "tally": """Name: Tally
Default: yes
Priority: 100
Auth-Type: Additional
Auth:
\trequired\tpam_tally.so
""",
    "aa-same": """Name: Same priority as the host's zero ones
Default: yes
Priority: 0
Session-Type: Additional
Session-Final:
\toptional\tpam_env.so  readenv=1   envfile=/etc/x
""",
}


def _root(base: Path) -> Tree:
    """A root with the host's templates and profiles plus MADE_UP, on disk and as a Tree."""
    tree = Tree()
    templates = need_file("/usr/share/pam/common-auth", "libpam-runtime's templates").parent
    profiles = need_file("/usr/share/pam-configs/unix", "libpam-runtime's profiles").parent
    files = {f"usr/share/pam/{p.name}": p.read_bytes() for p in templates.iterdir() if p.is_file()}
    files |= {f"usr/share/pam-configs/{p.name}": p.read_bytes() for p in profiles.iterdir() if p.is_file()}
    files |= {f"usr/share/pam-configs/{name}": text.encode() for name, text in MADE_UP.items()}
    for path, data in files.items():
        (base / path).parent.mkdir(parents=True, exist_ok=True)
        (base / path).write_bytes(data)
        tree.add_parents(path)
        tree.add(Entry(path, "file", 0o644, data=data))
    for folder in ("etc/pam.d", "var/lib/pam"):  # libpam-runtime ships both
        (base / folder).mkdir(parents=True)
    return tree


def test_pam_auth_update_writes_what_the_real_script_writes(tmp_path: Path) -> None:
    script = need_tool("pam-auth-update")
    need_file("/var/lib/dpkg/info/libpam-runtime.templates", "the script's debconf templates")
    root = tmp_path / "root"
    tree = _root(root)
    # A debconf of the test's own, so the host's answers neither leak in nor change.
    conf = tmp_path / "debconf.conf"
    conf.write_text(f"Config: configdb\nTemplates: templatedb\n\nName: configdb\nDriver: File\n"
                    f"Filename: {tmp_path}/config.dat\n\nName: templatedb\nDriver: File\n"
                    f"Filename: {tmp_path}/templates.dat\n")
    env = {**os.environ, "DEBCONF_SYSTEMRC": str(conf), "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    subprocess.run([script, "--root", str(root), "--package", "--force"], env=env, check=True, timeout=120,
                   stdin=subprocess.DEVNULL)
    made = pam_auth_update(tree, 0)
    kinds = ("auth", "account", "password", "session", "session-noninteractive")
    expected = [f"/etc/pam.d/common-{t}" for t in kinds] + [f"/var/lib/pam/{t}" for t in (*kinds, "seen")]
    assert sorted(made) == sorted(expected)
    for path in made:
        assert tree.entries[path.lstrip("/")].data == (root / path.lstrip("/")).read_bytes(), path
    auth = tree.entries["etc/pam.d/common-auth"].read()
    assert b"auth\t[success=2 default=ignore]\tpam_krb5.so minimum_uid=1000\n" in auth  # Initial, end -> 2
    assert b"pam_off.so" not in auth and b"pam_tally" not in auth


def test_a_template_without_the_markers_is_refused() -> None:
    tree = Tree()
    for kind in ("auth", "account", "password", "session", "session-noninteractive"):
        tree.add_parents(f"usr/share/pam/common-{kind}")
        tree.add(Entry(f"usr/share/pam/common-{kind}", "file", 0o644, data=b"auth required pam_unix.so\n"))
    try:
        pam_auth_update(tree, 0)
    except PamConfigError as error:
        assert "common-auth lacks pam-auth-update's markers" in str(error)
    else:
        raise AssertionError("no error")
