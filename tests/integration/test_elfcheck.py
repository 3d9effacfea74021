"""No foreign code in an image: ELF files are checked against the platform (xarch/build/elfcheck.py).

Real binaries throughout: the host's busybox (amd64 on an amd64 host), Debian's static
arm64 busybox, the host shell copied out of a cross stage, and real Debian packages
for amd64, arm64 and arm/v7 (the last test, against the mirror).
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from tests.support.aptrepo import AptRepo, FixturePackage, GpgKey, RepoServer, build_deb
from tests.support.e2e import EPOCH, error_lines, image_files, xarch, xarch_ok
from tests.support.needs import need_tool, not_applicable
from xarch import platforms
from xarch.build.elfcheck import foreign_files, mismatch, read_header
from xarch.oci.tree import Entry, Tree


@pytest.fixture
def host_busybox() -> Path:
    if platforms.host().name != "amd64":
        not_applicable("these tests use the host's busybox as the amd64 binary: needs an amd64 host")
    return Path(need_tool("busybox"))


def test_headers_of_real_binaries(host_busybox: Path, arm64_busybox: Path) -> None:
    amd64, arm64 = platforms.get("amd64"), platforms.get("arm64")
    x86 = read_header(host_busybox.read_bytes()[:64])
    arm = read_header(arm64_busybox.read_bytes()[:64])
    assert x86 is not None and arm is not None
    assert (x86.kind.machine, arm.kind.machine) == ("EM_X86_64", "EM_AARCH64")
    assert mismatch(x86, amd64) is None and mismatch(arm, arm64) is None
    reason = mismatch(x86, arm64)
    assert reason is not None and "linux/amd64" in reason and "the image is linux/arm64" in reason
    reason = mismatch(arm, amd64)
    assert reason is not None and reason.startswith("is linux/arm64 code")
    # Big-endian s390x and 32-bit arm refuse both.
    assert mismatch(x86, platforms.get("s390x")) is not None
    assert mismatch(arm, platforms.get("arm/v7")) is not None


@pytest.mark.parametrize("head", [b"", b"#!/bin/sh\necho hi\n", b"!<arch>\n", b"\x7fELF", b"\x7fELF\x09\x09",
                                  b"MZ\x90\x00" + bytes(60)])
def test_what_is_not_an_elf_header_is_not_checked(head: bytes) -> None:
    # Empty, a script, a static archive, truncated or nonsense ELF idents, a PE file.
    assert read_header(head) is None


def _elf32_arm(flags: int, osabi: int = 0, e_type: int = 2) -> bytes:
    """A 52-byte ELF32 little-endian ARM header (System V gABI layout) with FLAGS."""
    ident = b"\x7fELF" + bytes([1, 1, 1, osabi]) + bytes(8)
    return ident + struct.pack("<HHIIIIIHHHHHH", e_type, 40, 1, 0x10000, 52, 0, flags, 52, 32, 1, 40, 0, 0)


@pytest.mark.parametrize(("flags", "refused"), [
    (0x05000400, None),  # EABI5, hard-float: what Debian armhf ships
    (0x05000002, None),  # EABI5, no float flag (Go's linker): not refused
    (0x05000200, "soft-float"),  # EABI5, soft-float: Debian armel
    (0x00000000, "old ARM ABI"),  # no EABI version
])
def test_arm_v7_float_abi_and_eabi_come_from_the_platform_data(flags: int, refused: str | None) -> None:
    header = read_header(_elf32_arm(flags))
    assert header is not None
    reason = mismatch(header, platforms.get("arm/v7"))
    assert (reason is None) if refused is None else (reason is not None and refused in reason)


def test_the_os_abi_byte_is_checked() -> None:
    linux = read_header(_elf32_arm(0x05000400, osabi=3))
    freebsd = read_header(_elf32_arm(0x05000400, osabi=9))
    assert linux is not None and freebsd is not None
    assert mismatch(linux, platforms.get("arm/v7")) is None
    reason = mismatch(freebsd, platforms.get("arm/v7"))
    assert reason is not None and "ELFOSABI_FREEBSD" in reason


def test_amd64_runs_i386_code_but_arm64_does_not() -> None:
    i386 = read_header(b"\x7fELF\x01\x01\x01\x00" + bytes(8) + struct.pack("<HHI", 3, 3, 1) + bytes(32))
    assert i386 is not None and i386.kind.machine == "EM_386"
    assert mismatch(i386, platforms.get("amd64")) is None  # lib32* packages, grub-pc-bin
    assert mismatch(i386, platforms.get("386")) is None
    assert mismatch(i386, platforms.get("arm64")) is not None


def test_tree_check_reads_files_on_disk_and_honours_globs(host_busybox: Path, tmp_path: Path) -> None:
    tree = Tree()
    tree.add(Entry("opt/qemu/bin/tool", "file", 0o755, source=host_busybox, origin="files[1]"))
    tree.add(Entry("usr/bin/tool", "file", 0o755, source=host_busybox, origin="files[0]"))
    tree.add(Entry("usr/bin/script", "file", 0o755, data=b"#!/bin/sh\n"))
    tree.add(Entry("usr/lib/firmware.elf", "file", 0o644, source=host_busybox, origin="package fw 1 (all)"))
    arm64 = platforms.get("arm64")
    found = foreign_files(tree, arm64, ["/opt/qemu/**"], frozenset({"package fw 1 (all)"}))
    assert [(f.path, f.origin) for f in found] == [("usr/bin/tool", "files[0]")]
    assert foreign_files(tree, platforms.get("amd64")) == []


# --- through the real CLI ---------------------------------------------------------------------


def _refused(recipe: Path, tmp_path: Path) -> str:
    """The one error line of a build of RECIPE that must fail (exit 2) and write nothing."""
    out = tmp_path / "out"
    result = xarch("build", "-f", str(recipe), "-q", "-o", f"oci:{out}", cache=tmp_path / "cache")
    assert result.returncode == 2, result.stderr
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert not out.exists()
    return lines[0]


FILES_RECIPE = f"""\
name: elf-files
platforms: [amd64, arm64]
epoch: {EPOCH}
files:
  - src: bin/{{arch}}/busybox
    dst: /bin/busybox
    mode: "0755"
"""


def _files_project(folder: Path, amd64: Path, arm64: Path) -> Path:
    for arch, binary in (("amd64", amd64), ("arm64", arm64)):
        (folder / "bin" / arch).mkdir(parents=True)
        shutil.copy(binary, folder / "bin" / arch / "busybox")
    (folder / "xarch.yaml").write_text(FILES_RECIPE)
    return folder / "xarch.yaml"


def test_an_x86_64_binary_in_files_of_an_arm64_image_is_one_line(host_busybox: Path, tmp_path: Path) -> None:
    recipe = _files_project(tmp_path / "src", host_busybox, host_busybox)
    line = _refused(recipe, tmp_path)
    assert f"{recipe}:5: files[0]: /bin/busybox is linux/amd64 code" in line
    assert "the image is linux/arm64" in line and "foreign_code" in line


def test_the_right_binary_per_platform_passes(host_busybox: Path, arm64_busybox: Path,
                                              tmp_path: Path) -> None:
    recipe = _files_project(tmp_path / "src", host_busybox, arm64_busybox)
    out = tmp_path / "out"
    xarch_ok("build", "-f", str(recipe), "-q", "-o", f"oci:{out}", cache=tmp_path / "cache")
    assert image_files(out, "arm64")["bin/busybox"].data == arm64_busybox.read_bytes()


# What a host-python `pip install` in a cross stage does: host-arch code under a .so name. Here
# an arm64 stage (busybox under QEMU) whose step copies an amd64 binary of the stage to /out.
STAGE_RECIPE = f"""\
name: elf-stage
platforms: [arm64]
epoch: {EPOCH}
stages:
  build:
    strategy: emulate
    files:
      - {{src: arm64/busybox, dst: /bin/busybox, mode: "0755"}}
      - {{src: arm64/busybox, dst: /bin/sh, mode: "0755"}}
      - {{src: amd64/busybox, dst: /host/busybox, mode: "0755"}}
    steps:
      - run: |
          busybox mkdir -p /out/markupsafe
          busybox cp /host/busybox /out/markupsafe/_speedups.cpython-311-x86_64-linux-gnu.so
          echo "print('hi')" > /out/markupsafe/__init__.py
copy:
  - {{from: "build:/out/markupsafe", dst: /usr/lib/python3/dist-packages/markupsafe}}
"""
SO = "/usr/lib/python3/dist-packages/markupsafe/_speedups.cpython-311-x86_64-linux-gnu.so"


@pytest.mark.qemu
def test_host_code_copied_out_of_a_stage_is_refused(host_busybox: Path, arm64_busybox: Path,
                                                     tmp_path: Path) -> None:
    src = tmp_path / "src"
    for arch, binary in (("amd64", host_busybox), ("arm64", arm64_busybox)):
        (src / arch).mkdir(parents=True)
        shutil.copy(binary, src / arch / "busybox")
    recipe = src / "xarch.yaml"
    recipe.write_text(STAGE_RECIPE)
    line = _refused(recipe, tmp_path)
    assert f"{recipe}:17: copy[0]: {SO} (from build:/out/markupsafe) is linux/amd64 code" in line
    assert "the image is linux/arm64" in line

    # The opt-out: deliberate foreign code, named by path.
    recipe.write_text(STAGE_RECIPE + 'foreign_code: ["/usr/lib/python3/dist-packages/markupsafe/*.so"]\n')
    out = tmp_path / "out"
    xarch_ok("build", "-f", str(recipe), "-q", "-o", f"oci:{out}", cache=tmp_path / "cache")
    files = image_files(out, "arm64")
    assert files[SO.lstrip("/")].data == host_busybox.read_bytes()


@pytest.mark.parametrize("glob", ['"opt/x"', '"/opt/../etc"', "[1]", '"/opt/\\0x"'])
def test_foreign_code_globs_are_validated(tmp_path: Path, glob: str) -> None:
    (tmp_path / "xarch.yaml").write_text(f"name: x\nplatforms: [amd64]\nforeign_code: [{glob}]\n")
    result = xarch("build", "-f", str(tmp_path / "xarch.yaml"), "-o", f"oci:{tmp_path / 'out'}",
                   cache=tmp_path / "cache")
    assert result.returncode == 2
    lines = error_lines(result)
    assert len(lines) == 1 and ":3: foreign_code[0]: " in lines[0], result.stderr


@pytest.mark.slow
def test_real_debian_packages_for_three_platforms_pass(tmp_path: Path) -> None:
    """Executables, shared objects, .o files (libc6-dev's crt*.o), .a archives, scripts and
    data from the real archive: no false positive on amd64, arm64 or hard-float arm/v7;
    libc6-arm64-cross (Architecture: all, aarch64 code) passes in the amd64 image."""
    need_tool("gpgv")
    (tmp_path / "xarch.yaml").write_text(f"""\
name: elf-real
platforms: [amd64, arm64, arm/v7]
epoch: {EPOCH}
sources:
  debian:
    suites: [bookworm]
packages:
  install: [busybox-static, libc6-dev]
  platforms:
    amd64: {{add: [libc6-arm64-cross]}}
""")
    out = tmp_path / "out"
    xarch_ok("build", "-f", str(tmp_path / "xarch.yaml"), "-q", "-o", f"oci:{out}", cache=tmp_path / "cache",
             timeout=1200)
    machines = {"amd64": 0x3E, "arm64": 0xB7, "arm": 0x28}
    for arch, machine in machines.items():
        files = image_files(out, arch)
        crt1 = next(m for p, m in files.items() if p.endswith("/crt1.o"))
        assert crt1.data[16] == 1 and crt1.data[18] == machine  # ET_REL of the image's machine
        assert any(p.endswith("/libc.a") for p in files)
    amd64 = image_files(out, "amd64")
    cross = amd64["usr/aarch64-linux-gnu/lib/libc.so.6"]
    assert cross.data[18] == 0xB7


def test_every_platform_has_elf_facts_with_names_pyelftools_knows() -> None:
    from elftools.elf.enums import ENUM_E_MACHINE, ENUM_EI_CLASS, ENUM_EI_DATA, ENUM_EI_OSABI

    for plat in platforms.all_platforms().values():
        assert plat.elf is not None, f"platforms/{plat.slug}.yaml has no elf: block"
        for kind in (plat.elf.kind, *plat.elf.also):
            assert kind.machine in ENUM_E_MACHINE and kind.elf_class in ENUM_EI_CLASS, plat.name
            assert kind.data in ENUM_EI_DATA, plat.name
        assert set(plat.elf.osabi) <= set(ENUM_EI_OSABI), plat.name
        for rule in plat.elf.refuse_flags:
            assert rule.value & ~rule.mask == 0 and rule.means, plat.name
    kinds = [p.elf.kind for p in platforms.all_platforms().values() if p.elf]
    assert len(set(kinds)) == len(kinds), "two platforms claim the same ELF kind"


# --- packages: the hermetic signed archive of tests/support/aptrepo.py -------------------------

def test_package_files_are_checked_and_architecture_all_is_exempt(host_busybox: Path, tmp_path: Path,
                                                                  debian_key: GpgKey) -> None:
    need_tool("dpkg-deb")
    need_tool("apt-ftparchive")
    code = host_busybox.read_bytes()  # amd64 code, labelled as the package says
    repo = AptRepo(tmp_path / "repo", debian_key)
    for pkg in (FixturePackage("tool", arch="amd64", files={"usr/bin/tool": code}),
                FixturePackage("tool", arch="arm64", files={"usr/bin/tool": code}),  # mislabelled
                FixturePackage("fw", arch="all", files={"usr/lib/firmware/fw.elf": code})):
        repo.add(build_deb(pkg, tmp_path / "roots", tmp_path / "debs"))
    repo.publish()
    server = RepoServer(repo.root)
    try:
        keyring = debian_key.export(tmp_path / "keyring.gpg")
        recipe = tmp_path / "src" / "xarch.yaml"
        recipe.parent.mkdir()
        text = (f"name: pkg-elf\nplatforms: [amd64, arm64]\nepoch: {EPOCH}\nsources:\n  debian:\n"
                f"    suites: [stable]\n    mirror: {server.url}\n    keyring: {keyring}\n")
        recipe.write_text(text + "packages: [fw]\n")
        out = tmp_path / "out"
        xarch_ok("build", "-f", str(recipe), "-q", "-o", f"oci:{out}", cache=tmp_path / "cache")
        assert image_files(out, "arm64")["usr/lib/firmware/fw.elf"].data == code

        recipe.write_text(text + "packages: [tool]\n")
        (recipe.parent / "xarch.lock").unlink()
        line = _refused(recipe, tmp_path / "second")
        assert f"{recipe}:9: packages: package tool 1.0 (arm64): /usr/bin/tool is linux/amd64 code" in line
        assert "the image is linux/arm64" in line
    finally:
        server.stop()
