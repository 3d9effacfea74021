"""Maintainer-script effects reproduced without scripts, and layers as runtimes apply them.

The parsers are checked against real tools where the host has them (dpkg's own
update-alternatives, libcap's setcap); the whole is checked by building from the real
Debian archive and running the image in dockerd (amd64, and arm64 under QEMU).
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path

import docker
import pytest

from tests.support.dockerd import unique_tag
from tests.support.e2e import EPOCH, image_files, xarch_ok
from tests.support.needs import missing, need_tool, not_applicable
from tests.support.trees import entry_at
from xarch.build.placement import settle
from xarch.errors import BuildError
from xarch.oci.tree import Entry, Tree
from xarch.sources.debian import capabilities
from xarch.sources.debian.accounts import AccountCallError, add_system_account, shadow_files
from xarch.sources.debian.alternatives import Alternatives, CallError, Install, Remove, admin_file, parse_call
from xarch.sources.debian.certhash import rehash_links, subject_hash
from xarch.sources.debian.effects import etc_shells
from xarch.sources.debian.scripts import commands

MAWK_POSTINST = b"""#!/bin/sh
set -e
# summary of how this script can be called: `configure' <version>
if [ "$1" = configure ]; then
        update-alternatives --install /usr/bin/awk awk /usr/bin/mawk 5 \\
            --slave /usr/share/man/man1/awk.1.gz awk.1.gz /usr/share/man/man1/mawk.1.gz \\
            --slave /usr/bin/nawk nawk /usr/bin/mawk
fi
"""


# --- reading scripts ------------------------------------------------------------------

def test_a_continued_install_call_is_one_command_with_every_word() -> None:
    found = [c for c in commands(MAWK_POSTINST) if c.name == "update-alternatives"]
    assert len(found) == 1 and found[0].resolved
    assert found[0].words == (
        "update-alternatives", "--install", "/usr/bin/awk", "awk", "/usr/bin/mawk", "5",
        "--slave", "/usr/share/man/man1/awk.1.gz", "awk.1.gz", "/usr/share/man/man1/mawk.1.gz",
        "--slave", "/usr/bin/nawk", "nawk", "/usr/bin/mawk")


def test_literal_variables_truename_and_dpkg_root_are_substituted() -> None:
    script = b"""PROGRAM=$(dpkg-divert --truename /bin/ping)
if command -v setcap > /dev/null; then
    if setcap cap_net_raw+ep $PROGRAM; then chmod u-s "${PROGRAM}"; fi
fi
touch "$DPKG_ROOT/etc/x" 2>/dev/null || true
"""
    words = [c.words for c in commands(script) if c.name in ("setcap", "chmod", "touch")]
    assert words == [("setcap", "cap_net_raw+ep", "/bin/ping"), ("chmod", "u-s", "/bin/ping"),
                     ("touch", "/etc/x")]


def test_words_that_need_the_script_are_marked_unresolved() -> None:
    script = b"""check() {
  BINNAME="$1"
  update-alternatives --install /usr/bin/"$BINNAME" "$BINNAME" /usr/bin/"$BINNAME".procps 50
}
X=a
X=b
ln -s $X /y
"""
    found = {c.name: c for c in commands(script)}
    assert not found["update-alternatives"].resolved
    assert not found["ln"].resolved  # assigned twice: no single value without running it


def test_comments_and_here_documents_do_not_hide_or_invent_commands() -> None:
    script = b"""cat <<EOF
it's data: setcap cap_sys_admin+ep /bin/sh
EOF
echo "a # not a comment" # it's a comment
setcap cap_net_raw+p /bin/ping
"""
    names = [c.words for c in commands(script)]
    assert ("setcap", "cap_net_raw+p", "/bin/ping") in names
    assert not any("cap_sys_admin+ep" in c for c in names)
    assert ("echo", "a # not a comment") in names


# --- update-alternatives ----------------------------------------------------------------

def test_parse_call_shapes_and_refusals() -> None:
    call = parse_call(("update-alternatives", "--quiet", "--install", "/usr/bin/x", "x", "/usr/bin/x1", "7",
                       "--slave", "/usr/bin/y", "y", "/usr/bin/y1"))
    assert call == Install("/usr/bin/x", "x", "/usr/bin/x1", 7, (("/usr/bin/y", "y", "/usr/bin/y1"),))
    assert parse_call(("update-alternatives", "--remove", "x", "/usr/bin/x1")) == Remove("x", "/usr/bin/x1")
    assert parse_call(("update-alternatives", "--auto", "x")) is None
    for bad in (("--set", "x", "/a"), ("--install", "/a", "x", "/b", "high"),
                ("--install", "a", "x", "/b", "1"), ("--install", "/a", "x", "/b", "1", "--bogus")):
        with pytest.raises(CallError):
            parse_call(("update-alternatives", *bad))


def _tree_with(*files: str) -> Tree:
    tree = Tree()
    for path in files:
        tree.add_parents(path)
        tree.add(Entry(path, "file", 0o755, data=b"x"))
    return tree


def test_highest_priority_wins_and_ties_go_to_the_first_path() -> None:
    tree = _tree_with("usr/bin/b-impl", "usr/bin/a-impl", "usr/bin/c-impl")
    alts = Alternatives()
    alts.install(Install("/usr/bin/x", "x", "/usr/bin/b-impl", 10))
    alts.install(Install("/usr/bin/x", "x", "/usr/bin/c-impl", 5))
    alts.install(Install("/usr/bin/x", "x", "/usr/bin/a-impl", 10))
    alts.apply(tree, EPOCH)
    assert entry_at(tree, "etc/alternatives/x").linkname == "/usr/bin/a-impl"
    assert entry_at(tree, "usr/bin/x").linkname == "/etc/alternatives/x"
    alts.remove(Remove("x", "/usr/bin/a-impl"))
    alts.apply(tree, EPOCH)
    assert entry_at(tree, "etc/alternatives/x").linkname == "/usr/bin/b-impl"


def test_links_and_records_match_dpkgs_own_update_alternatives(tmp_path: Path) -> None:
    """The host's update-alternatives (dpkg) and xarch, given the same calls, leave the
    same /var/lib/dpkg/alternatives file and the same links."""
    tool = need_tool("update-alternatives")
    root = tmp_path / "root"
    base = root.as_posix()
    for name in ("usr/bin/mawk", "usr/bin/gawk", "usr/share/man/man1/mawk.1.gz"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    (root / "etc/alternatives").mkdir(parents=True)
    (root / "admin").mkdir()
    calls = [
        ["--install", f"{base}/usr/bin/awk", "awk", f"{base}/usr/bin/mawk", "5",
         "--slave", f"{base}/usr/share/man/man1/awk.1.gz", "awk.1.gz", f"{base}/usr/share/man/man1/mawk.1.gz",
         "--slave", f"{base}/usr/bin/nawk", "nawk", f"{base}/usr/bin/mawk"],
        ["--install", f"{base}/usr/bin/awk", "awk", f"{base}/usr/bin/gawk", "10",
         "--slave", f"{base}/usr/bin/nawk", "nawk", f"{base}/usr/bin/gawk"],
    ]
    tree = _tree_with(*(p.relative_to("/").as_posix() for p in root.rglob("*") if p.is_file()))
    alts = Alternatives()
    for call in calls:
        subprocess.run([tool, "--quiet", "--altdir", f"{base}/etc/alternatives",
                        "--admindir", f"{base}/admin", *call], check=True, capture_output=True)
        parsed = parse_call(("update-alternatives", *call))
        assert isinstance(parsed, Install)
        alts.install(parsed)
    alts.apply(tree, EPOCH)
    assert admin_file(alts.groups["awk"]) == (root / "admin/awk").read_bytes()
    # dpkg's links point into its --altdir; xarch's into the image's /etc/alternatives.
    for link in ("usr/bin/awk", "usr/bin/nawk"):
        assert os.readlink(root / link) == f"{base}/etc/alternatives/{Path(link).name}"
        assert entry_at(tree, f"{base[1:]}/{link}").linkname == f"/etc/alternatives/{Path(link).name}"
    for name in ("awk", "nawk"):
        link = entry_at(tree, f"etc/alternatives/{name}").linkname
        assert os.readlink(root / "etc/alternatives" / name) == link
    # gawk's choice has no man page slave: dpkg removes that link, xarch never makes it.
    assert not (root / "usr/share/man/man1/awk.1.gz").is_symlink()
    assert tree.get(f"{base[1:]}/usr/share/man/man1/awk.1.gz") is None


# --- capabilities -------------------------------------------------------------------------

def test_capability_text_gives_the_kernels_bytes() -> None:
    value = capabilities.from_text("cap_net_raw+ep")
    assert value == struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)
    assert capabilities.from_text("cap_net_raw+p") == struct.pack("<5I", 0x02000000, 1 << 13, 0, 0, 0)
    many = capabilities.from_text("cap_dac_override,cap_sys_admin,cap_net_admin=ep")
    assert struct.unpack("<5I", many)[1] == (1 << 1) | (1 << 21) | (1 << 12)
    assert struct.unpack("<5I", capabilities.from_text("cap_bpf+p"))[3] == 1 << (39 - 32)
    with pytest.raises(capabilities.CapabilityError):
        capabilities.from_text("cap_nonsense+p")
    v3 = struct.pack("<6I", 0x03000001, 1 << 13, 0, 0, 0, 100000)
    assert capabilities.portable(v3) == value


def test_capability_text_matches_libcaps_setcap(tmp_path: Path) -> None:
    setcap = need_tool("setcap")
    target = tmp_path / "tool"
    target.write_bytes(b"x")
    for text in ("cap_net_raw+ep", "cap_net_raw+p", "cap_dac_override,cap_sys_admin,cap_net_admin=ep",
                 "cap_chown,cap_bpf+ip"):
        done = subprocess.run([setcap, text, str(target)], capture_output=True, text=True)
        if done.returncode != 0:
            missing(f"setcap cannot set file capabilities here: {done.stderr.strip()}")
        written = capabilities.portable(os.getxattr(target, capabilities.XATTR))
        assert capabilities.from_text(text) == written, text


def test_subject_hash_matches_openssl_for_every_debian_ca() -> None:
    openssl = need_tool("openssl")
    certs = sorted(Path("/usr/share/ca-certificates").rglob("*.crt"))
    if not certs:
        missing("ca-certificates is not installed on this host (scripts/setup-host installs it)")
    for cert in certs:
        wanted = subprocess.run([openssl, "x509", "-noout", "-subject_hash", "-in", str(cert)],
                                capture_output=True, text=True, check=True).stdout.strip()
        assert subject_hash(cert.read_bytes()) == wanted, cert


def test_rehash_links_number_collisions_and_skip_duplicates() -> None:
    cert = next(iter(sorted(Path("/usr/share/ca-certificates").rglob("*.crt"))), None)
    if cert is None:
        missing("ca-certificates is not installed on this host (scripts/setup-host installs it)")
    data = cert.read_bytes()
    digest = subject_hash(data)
    links = rehash_links([("b.pem", data), ("a.pem", data), ("bundle.crt", b"not a cert")])
    assert links == [(f"{digest}.0", "a.pem")]  # b.pem is the same certificate: skipped


# --- accounts -----------------------------------------------------------------------------

def test_passwd_makes_shadow_and_gshadow_root_shadow_0640() -> None:
    tree = Tree()
    tree.add_parents("etc/passwd")
    tree.add(Entry("etc/passwd", "file", 0o644, data=b"root:*:0:0:root:/root:/bin/bash\n"))
    tree.add(Entry("etc/group", "file", 0o644, data=b"root:*:0:\nshadow:*:42:\n"))
    shadow_files(tree, EPOCH)
    day = EPOCH // 86400
    assert entry_at(tree, "etc/shadow").read() == f"root:*:{day}:0:99999:7:::\n".encode()
    assert entry_at(tree, "etc/gshadow").read() == b"root:*::\nshadow:*::\n"
    assert entry_at(tree, "etc/passwd").read() == b"root:x:0:0:root:/root:/bin/bash\n"
    for name in ("etc/shadow", "etc/gshadow"):
        entry = entry_at(tree, name)
        assert (entry.mode, entry.uid, entry.gid) == (0o640, 0, 42)


def test_system_accounts_as_adduser_makes_them() -> None:
    tree = Tree()
    tree.add_parents("etc/passwd")
    tree.add(Entry("etc/passwd", "file", 0o644, data=b"root:x:0:0:root:/root:/bin/bash\n"
                   b"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"))
    tree.add(Entry("etc/group", "file", 0o644, data=b"root:x:0:\nshadow:x:42:\nnogroup:x:65534:\n"))
    scripts = [
        b"adduser --force-badname --system --home /nonexistent --no-create-home --quiet _apt\n",  # apt
        b"addgroup --system --quiet tcpdump\n"  # tcpdump
        b"adduser --system --quiet --ingroup tcpdump --no-create-home --home /nonexistent tcpdump\n",
        b"adduser --system --home /var/lib/redis --quiet --group redis\n",  # redis-tools
        b"adduser --system --quiet _apt\n",  # an existing name is left alone
    ]
    for script in scripts:
        for command in commands(script):
            add_system_account(tree, command.words, EPOCH)
    assert entry_at(tree, "etc/passwd").read().decode().splitlines()[2:] == [
        "_apt:x:100:65534::/nonexistent:/usr/sbin/nologin",
        "tcpdump:x:101:100::/nonexistent:/usr/sbin/nologin",
        "redis:x:102:102::/var/lib/redis:/usr/sbin/nologin",
    ]
    assert entry_at(tree, "etc/group").read().decode().splitlines()[3:] == ["tcpdump:x:100:", "redis:x:102:"]
    home = entry_at(tree, "var/lib/redis")
    assert (home.type, home.uid, home.gid, home.mode) == ("dir", 102, 102, 0o755)
    for bad in (("adduser", "_apt"), ("adduser", "--system", "--bogus", "x"), ("adduser", "u", "g")):
        with pytest.raises(AccountCallError):
            add_system_account(tree, bad, EPOCH)


def test_etc_shells_matches_debianutils_update_shells(tmp_path: Path) -> None:
    """The host's update-shells (debianutils 5.7) on a merged-/usr root, after the postinst's
    copy of the template, gives the /etc/shells and state file xarch writes."""
    tool = need_tool("update-shells")
    need_tool("dpkg-realpath")
    files = {
        "usr/share/debianutils/shells": b"# /etc/shells: valid login shells\n/bin/sh\n",
        "usr/share/debianutils/shells.d/dash": b"/bin/dash\n",
        "usr/share/debianutils/shells.d/bash": b"/bin/bash\n/bin/rbash\n",
        "usr/share/debianutils/shells.d/zsh": b"/bin/zsh\n/usr/bin/zsh # comment\n",
    }
    root = tmp_path / "root"
    tree = Tree()
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
        tree.add_parents(path)
        tree.add(Entry(path, "file", 0o644, data=data))
    (root / "usr/bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    tree.add(Entry("usr/bin", "dir", 0o755))
    tree.add(Entry("bin", "symlink", 0o777, linkname="usr/bin"))
    for folder in ("etc", "var/lib"):
        (root / folder).mkdir(parents=True)
    shutil.copy(root / "usr/share/debianutils/shells", root / "etc/shells")
    subprocess.run([tool, "--root", str(root)], check=True, capture_output=True)
    etc_shells(tree, EPOCH)
    assert entry_at(tree, "etc/shells").read() == (root / "etc/shells").read_bytes()
    assert entry_at(tree, "var/lib/shells.state").read() == (root / "var/lib/shells.state").read_bytes()


def test_lost_effects_are_one_summary_line_and_each_is_said_with_v() -> None:
    from xarch.sources.debian.deb import Deb
    from xarch.sources.debian.effects import reproduce
    from xarch.sources.debian.install import InstallReport

    def deb(name: str, postinst: bytes) -> tuple[str, Deb]:
        control = {"control": f"Package: {name}\n".encode(), "postinst": postinst}
        return name, Deb(name, control, "data.tar", b"")

    tree = _tree_with("usr/bin/mawk", "usr/bin/ping")
    effects = reproduce(tree, [
        deb("mawk", MAWK_POSTINST),  # reproduced in full
        deb("iputils-ping", b"setcap cap_net_raw+ep /usr/bin/ping || chmod u+s /usr/bin/ping\n"),
        deb("nginx-common", b"chown www-data:adm /var/log/nginx\nln -s /a /b\n"),
        deb("dash", b"dpkg-divert --package dash --add /bin/sh\n"),
        deb("quiet", b"echo hello\n"),  # no effect command
    ], EPOCH)
    assert effects.summary() == ("2 packages have maintainer-script effects xarch does not reproduce: "
                                 "dash, nginx-common; see --show-scripts")
    report = InstallReport(effects=effects)
    assert report.lines()[-3:] == [
        "not reproduced: nginx-common postinst: would run chown www-data:adm /var/log/nginx",
        "not reproduced: nginx-common postinst: would run ln -s /a /b",
        "not reproduced: dash postinst: would run dpkg-divert --package dash --add /bin/sh",
    ]
    assert entry_at(tree, "usr/bin/awk").linkname == "/etc/alternatives/awk"
    capability = capabilities.from_text("cap_net_raw+ep")
    assert entry_at(tree, "usr/bin/ping").xattrs == ((capabilities.XATTR, capability),)
    assert reproduce(Tree(), [deb("quiet", b"true\n")], EPOCH).summary() is None


# --- placement ----------------------------------------------------------------------------

def test_entries_below_a_symlink_move_to_where_it_leads() -> None:
    tree = _tree_with("usr/bin/sh", "usr/lib/libc.so")
    tree.add(Entry("bin", "symlink", 0o777, linkname="usr/bin"))
    tree.add(Entry("lib", "symlink", 0o777, linkname="/usr/lib"))
    tree.add(Entry("bin/hello", "file", 0o755, data=b"hi"))
    tree.add(Entry("lib/app", "dir", 0o700))
    tree.add(Entry("lib/app/data", "file", 0o644, data=b"d"))
    tree.add(Entry("lib/app/same", "hardlink", 0o644, linkname="lib/app/data"))
    moved = settle(tree)
    assert ("bin/hello", "usr/bin/hello") in moved
    assert entry_at(tree, "usr/bin/hello").read() == b"hi"
    assert entry_at(tree, "usr/lib/app").mode == 0o700
    assert entry_at(tree, "usr/lib/app/same").linkname == "usr/lib/app/data"
    for entry in tree:
        parent = entry.path.rsplit("/", 1)[0] if "/" in entry.path else ""
        assert parent == "" or entry_at(tree, parent).type == "dir", entry.path


def test_whiteout_names_are_one_line_errors_and_dangling_links_move_nothing() -> None:
    tree = _tree_with("etc/.wh.passwd")
    with pytest.raises(BuildError, match=r"/etc/\.wh\.passwd.*whiteout"):
        settle(tree)
    tree = Tree()
    tree.add(Entry("up", "symlink", 0o777, linkname="../.."))
    tree.add(Entry("nowhere", "symlink", 0o777, linkname="/missing"))
    tree.add(Entry("up/x", "file", 0o644, data=b""))
    tree.add(Entry("nowhere/y", "file", 0o644, data=b""))
    assert settle(tree) == []  # left for xarch.build.treecheck to refuse with the recipe line


# --- recipe files: hard links and capabilities ------------------------------------------

def test_hard_links_and_capabilities_of_files_stay(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data/a.txt").write_text("same\n")
    os.link(project / "data/a.txt", project / "data/b.txt")
    tool = project / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    tool.chmod(0o755)
    value = capabilities.from_text("cap_net_bind_service+ep")
    try:
        os.setxattr(tool, capabilities.XATTR, value)
    except OSError:
        value = b""  # an unprivileged run: the hard-link half still runs
    (project / "xarch.yaml").write_text(f"""\
name: links
platforms: [amd64]
epoch: {EPOCH}
files:
  - {{src: data, dst: /data}}
  - {{src: tool, dst: /usr/bin/tool}}
""")
    out = tmp_path / "out"
    xarch_ok("build", "-f", str(project / "xarch.yaml"), "-o", f"oci:{out}", cache=tmp_path / "cache")
    files = image_files(out, "amd64")
    assert files["data/a.txt"].type == tarfile.REGTYPE
    assert (files["data/b.txt"].type, files["data/b.txt"].linkname) == (tarfile.LNKTYPE, "data/a.txt")
    if value:
        assert _pax_xattrs(out, "usr/bin/tool") == {"SCHILY.xattr.security.capability": value}


def _binfmt_flags(name: str) -> str:
    entry = Path("/proc/sys/fs/binfmt_misc") / name
    lines = entry.read_text().splitlines() if entry.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("flags:")), "")


def _pax_xattrs(layout: Path, path: str, arch: str = "amd64") -> dict[str, bytes]:
    import gzip

    from tests.support.e2e import _blob, _json, manifests

    manifest = _json(layout, manifests(layout)[arch])

    for layer in manifest["layers"]:
        raw = gzip.decompress(_blob(layout, layer["digest"]))
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for info in tar:
                if info.name == path:
                    return {k: v.encode("utf-8", "surrogateescape") for k, v in info.pax_headers.items()
                            if k.startswith("SCHILY.xattr.")}
    raise AssertionError(f"{path} not in the image")


# --- the real archive, the real runtime --------------------------------------------------

PACKAGES = ("[mawk, debianutils, dash, dpkg, libc6, libssl3, libzstd1, iputils-ping, passwd, base-passwd, "
            "ca-certificates, openssl]")


@pytest.fixture(scope="module")
def debian_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One image of PACKAGES for amd64 and arm64 from the real bookworm archive, with a
    recipe file at /bin/hello (merged /usr: /bin is a link) and a uid 1000."""
    need_tool("gpgv")
    base = tmp_path_factory.mktemp("debian-effects")
    project = base / "project"
    project.mkdir()
    (project / "hello").write_text("#!/bin/sh\necho hello from /bin\n")
    (project / "hello").chmod(0o755)
    (project / "xarch.yaml").write_text(f"""\
name: effects
platforms: [amd64, arm64]
epoch: {EPOCH}
sources:
  debian:
    suites: [bookworm]
packages: {PACKAGES}
accounts:
  groups: [{{name: app, gid: 1000}}]
  users: [{{name: app, uid: 1000, gid: 1000}}]
files:
  - {{src: hello, dst: /bin/hello}}
""")
    out = base / "out"
    result = xarch_ok("build", "-f", str(project / "xarch.yaml"), "-o", f"oci:{out}", cache=base / "cache")
    return out, result.stderr


@pytest.mark.slow
def test_the_build_names_packages_whose_effects_are_lost_in_one_line(debian_image: tuple[Path, str]) -> None:
    _, stderr = debian_image
    lines = [line for line in stderr.splitlines() if "maintainer-script effects" in line]
    assert len(lines) == 2  # one per platform
    assert "see --show-scripts" in lines[0] and "dash" in lines[0]
    assert "mawk" not in lines[0] and "iputils-ping" not in lines[0]  # reproduced in full


@pytest.mark.slow
def test_image_files_carry_the_effects(debian_image: tuple[Path, str]) -> None:
    out, _ = debian_image
    for arch in ("amd64", "arm64"):
        files = image_files(out, arch)
        assert files["usr/bin/awk"].linkname == "/etc/alternatives/awk"
        assert files["etc/alternatives/awk"].linkname == "/usr/bin/mawk"
        assert files["var/lib/dpkg/alternatives/awk"].data.startswith(b"auto\n/usr/bin/awk\n")
        assert files["var/lib/dpkg/info/format"].data == b"1\n"
        assert f"var/lib/dpkg/info/libzstd1:{arch}.list" in files
        assert "bin/hello" not in files and files["usr/bin/hello"].data.startswith(b"#!/bin/sh")
        shadow = files["etc/shadow"]
        assert (shadow.mode, shadow.uid, shadow.gid) == (0o640, 0, 42)
        assert b"shadow:x:42:" in files["etc/group"].data


def _run(client: docker.DockerClient, tag: str, platform: str, command: list[str], **kwargs: object) -> str:
    output = client.containers.run(tag, command, remove=True, network_disabled=True, platform=platform,
                                   entrypoint=[], stderr=True, **kwargs)
    return output.decode()


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["amd64", pytest.param("arm64", marks=pytest.mark.qemu)])
def test_the_image_behaves_as_if_apt_made_it(debian_image: tuple[Path, str], arch: str,
                                            dockerd: docker.DockerClient, made_images: list[str]) -> None:
    from xarch.docker.load import load_image

    out, _ = debian_image
    tag = unique_tag("xarch-effects")
    made_images.append(tag)
    load_image(out, platform=arch, tag=tag, client=dockerd)  # the docker load API: merged /usr accepted
    platform = f"linux/{arch}"
    assert _run(dockerd, tag, platform, ["/bin/hello"]) == "hello from /bin\n"
    assert _run(dockerd, tag, platform, ["awk", "BEGIN { print 6 * 7 }"]) == "42\n"
    assert _run(dockerd, tag, platform, ["which", "awk"]) == "/usr/bin/awk\n"
    # dpkg's own update-alternatives reads the records xarch wrote as its own.
    display = _run(dockerd, tag, platform, ["update-alternatives", "--display", "awk"])
    assert "awk - auto mode\n" in display and "link currently points to /usr/bin/mawk\n" in display
    assert "/usr/lib/" in _run(dockerd, tag, platform, ["dpkg", "-L", "libzstd1"])
    assert _run(dockerd, tag, platform, ["dpkg", "-S", "libzstd.so.1"]).startswith(f"libzstd1:{arch}: ")
    listing = _run(dockerd, tag, platform, ["dpkg", "-l"])
    assert "ii  mawk" in listing and f"ii  libzstd1:{arch}" in listing
    assert _run(dockerd, tag, platform, ["dpkg", "--verify"]) == ""
    assert _run(dockerd, tag, platform, ["dpkg", "--audit"]) == ""
    ca = "/usr/share/ca-certificates/mozilla/ISRG_Root_X1.crt"
    verified = _run(dockerd, tag, platform, ["openssl", "verify", "-CApath", "/etc/ssl/certs", ca])
    assert verified == f"{ca}: OK\n"
    # ping as uid 1000 needs the file capability: the ICMP datagram socket is off (as in
    # Kubernetes' default), so only cap_net_raw lets it open a raw socket.
    expected = {"SCHILY.xattr.security.capability": capabilities.from_text("cap_net_raw+ep")}
    assert _pax_xattrs(out, "usr/bin/ping", arch) == expected
    if arch != "amd64" and "C" not in _binfmt_flags("qemu-aarch64"):
        # Without binfmt_misc's C flag the kernel gives an emulated program the
        # interpreter's credentials, never the program's file capabilities.
        not_applicable("Debian registers qemu-aarch64 without binfmt_misc's C flag: file capabilities "
                       "never apply under QEMU")
    ping = _run(dockerd, tag, platform, ["ping", "-c1", "127.0.0.1"], user="1000",
                sysctls={"net.ipv4.ping_group_range": "1 0"})
    assert "1 received" in ping



@pytest.mark.slow
def test_a_capability_set_in_a_stage_step_reaches_the_image(tmp_path: Path) -> None:
    """setcap inside the sandbox writes a revision-3 value (its root is a mapped host
    uid); the layer carries it as revision 2, as Docker and BuildKit do."""
    need_tool("gpgv")
    need_tool("bwrap")
    project = tmp_path / "project"
    project.mkdir()
    (project / "xarch.yaml").write_text(f"""\
name: capstage
platforms: [amd64]
epoch: {EPOCH}
sources:
  debian:
    suites: [bookworm]
stages:
  build:
    packages: [dash, coreutils, libcap2-bin]
    steps:
      - run: |
          mkdir -p /out
          cp /usr/bin/dash /out/tool
          setcap cap_net_raw+ep /out/tool
copy:
  - {{from: "build:/out/tool", dst: /usr/bin/tool}}
""")
    out = tmp_path / "out"
    xarch_ok("build", "-f", str(project / "xarch.yaml"), "-o", f"oci:{out}", cache=tmp_path / "cache")
    expected = {"SCHILY.xattr.security.capability": capabilities.from_text("cap_net_raw+ep")}
    assert _pax_xattrs(out, "usr/bin/tool") == expected
