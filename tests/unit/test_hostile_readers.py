"""Hostile layouts and archives, refused in the one reader every command uses (xarch/oci/layout.py
LayoutReader, xarch/oci/archive.py, xarch/oci/model.py): huge documents refused before they are read,
duplicated or unsafe archive members, blobs that are no regular file, media types that lie, and JSON
worded plainly. Each input is a layout xarch wrote, then altered."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.oci_images import EPOCH, make_artifact
from xarch.docker.load import DockerError, read_layout_image
from xarch.errors import InputError
from xarch.oci.archive import ArchiveError, open_archive
from xarch.oci.dockerarchive import write_docker_archive
from xarch.oci.layout import MAX_DOCUMENT_BYTES, LayoutError, LayoutReader, write_layout, write_oci_archive
from xarch.oci.model import images_of, layout_top
from xarch.oci.schema import DocumentError, parse_document
from xarch.oci.verified import BadDescriptor, json_object
from xarch.registry.layout_source import layout_folder, read_layout
from xarch.summary import summarize_path

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = make_artifact()
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    write_layout(ARTIFACT, tmp_path / "img")
    return tmp_path / "img"


def read_all(path: Path) -> None:
    """What inspect does: the image under index.json, every config and layer hashed."""
    reader = LayoutReader(path)
    try:
        for image in images_of(layout_top(reader)):
            image.verify()
    finally:
        reader.close()


def blob(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest.removeprefix("sha256:")


def put(root: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blob(root, digest).write_bytes(data)
    return digest


FIRST_MANIFEST: dict[str, object] = json.loads(ARTIFACT.images[0].manifest_bytes)


def first_layer() -> str:
    return ARTIFACT.images[0].layers[0].digest


def set_manifest(root: Path, manifest: dict[str, object], entry_type: str | None = None) -> str:
    """Store MANIFEST as the index's first image (its entry's mediaType ENTRY_TYPE when given)."""
    data = json.dumps(manifest).encode()
    top = json.loads((root / "index.json").read_text())
    index = json.loads(blob(root, top["manifests"][0]["digest"]).read_bytes())
    index["manifests"][0].update(digest=put(root, data), size=len(data))
    if entry_type:
        index["manifests"][0]["mediaType"] = entry_type
    index_bytes = json.dumps(index).encode()
    top["manifests"][0].update(digest=put(root, index_bytes), size=len(index_bytes))
    (root / "index.json").write_text(json.dumps(top))
    return str(index["manifests"][0]["digest"])


def archive_with(
    tmp_path: Path, extra: list[tuple[tarfile.TarInfo, bytes | None]], first: bool = False
) -> Path:
    """An oci-archive xarch wrote, with EXTRA members added before (FIRST) or after its own."""
    source = tmp_path / "src.tar"
    write_oci_archive(ARTIFACT, source, EPOCH)
    target = tmp_path / "hostile.tar"
    with tarfile.open(source) as original, tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as out:
        own = [(m, original.extractfile(m).read() if m.isfile() else None) for m in original]  # type: ignore[union-attr]
        for member, data in (extra + own) if first else (own + extra):
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    return target


def member(
    name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


# 1. Unbounded reads


def test_a_sparse_huge_index_json_is_refused_before_it_is_read(layout: Path) -> None:
    with open(layout / "index.json", "r+b") as handle:
        handle.truncate(8 << 30)  # sparse: 8 GiB claimed, nothing on disk
    with pytest.raises(
        LayoutError, match=rf"^{layout}: index.json is 8589934592 bytes, more than the {MAX_DOCUMENT_BYTES}"
    ):
        read_all(layout)


def test_a_huge_oci_layout_file_is_refused_naming_it(layout: Path) -> None:
    with open(layout / "oci-layout", "r+b") as handle:
        handle.truncate(MAX_DOCUMENT_BYTES + 1)
    with pytest.raises(LayoutError, match=r"oci-layout is \d+ bytes, more than"):
        LayoutReader(layout)


def test_a_docker_manifest_json_claiming_gigabytes_is_refused_before_it_is_read(tmp_path: Path) -> None:
    target = tmp_path / "docker.tar"
    with tarfile.open(target, "w") as out:
        info = tarfile.TarInfo("manifest.json")
        info.size = 6 << 30  # the header claims 6 GiB; the data is cut short (sparse on disk)
        out.addfile(info)
    with open(target, "r+b") as handle:  # append zeros as the data, then the end-of-archive blocks
        handle.seek(0, os.SEEK_END)
        handle.truncate(handle.tell() + (6 << 30) + 1024)
    reader = LayoutReader(target)
    try:
        with pytest.raises(LayoutError, match="manifest.json is 6442450944 bytes, more than the 4194304"):
            reader.read("manifest.json")
    finally:
        reader.close()


def test_inspect_of_a_huge_index_json_is_exit_2_under_a_memory_limit(layout: Path) -> None:
    with open(layout / "index.json", "r+b") as handle:
        handle.truncate(8 << 30)
    run = subprocess.run(
        ["bash", "-c", f"ulimit -v 2000000; exec {sys.executable} -m xarch.cli inspect {layout}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines() == [
        f"xarch: error: {layout}: index.json is 8589934592 bytes, more than the 4194304 a document may have"
    ]


# 2. Archive members


@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize("name", ["index.json", "./index.json", ".//index.json", "index.json/",
                                  "././/index.json"])
def test_an_archive_with_a_duplicated_member_is_refused_whichever_comes_first(
    tmp_path: Path, name: str, first: bool
) -> None:
    target = archive_with(tmp_path, [member(name, b"garbage")], first=first)
    with pytest.raises(ArchiveError, match=rf"^{target}: member 'index.json' appears twice in the archive$"):
        open_archive(target)
    with pytest.raises(ArchiveError):
        LayoutReader(target)


@pytest.mark.parametrize("spelling", ["blobs/sha256/{hex}", "blobs//sha256/{hex}", "./blobs/./sha256//{hex}"])
def test_a_duplicated_layer_member_is_refused(tmp_path: Path, spelling: str) -> None:
    """Another spelling of one path (`//`, `./`) is the same member, as `tar -x` places it: an
    oci-archive read in place and one unpacked first must never mean two images."""
    name = spelling.format(hex=first_layer().removeprefix("sha256:"))
    target = archive_with(tmp_path, [member(name, b"not the layer")], first=False)
    with pytest.raises(ArchiveError, match="appears twice"):
        LayoutReader(target)


def test_a_member_below_a_symlink_or_file_is_refused(tmp_path: Path) -> None:
    """`d -> .` then `d/index.json`: `tar -x` writes the second index through the link over the
    first, a reader by name keeps both apart. Either way the archive means two things."""
    target = archive_with(tmp_path, [member("d", kind=tarfile.SYMTYPE, link="."),
                                     member("d/index.json", b"{}")])
    with pytest.raises(ArchiveError, match=r"member 'd/index.json' lies below 'd', which is a symlink"):
        open_archive(target)
    (tmp_path / "two").mkdir()
    target = archive_with(tmp_path / "two", [member("f", b"a file"), member("f/index.json", b"{}")])
    says = r"member 'f/index.json' lies below 'f', which is a regular file, not a folder"
    with pytest.raises(ArchiveError, match=says):
        LayoutReader(target)


def _raw_member(name: str, data: bytes, headers: bytes) -> bytes:
    """HEADERS (raw pax or GNU long-name blocks) then a ustar member NAME holding DATA."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return headers + info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict") + data + \
        b"\0" * (-len(data) % tarfile.BLOCKSIZE)


def _pax(values: dict[str, str]) -> bytes:
    return tarfile.TarInfo._create_pax_generic_header(values, tarfile.XHDTYPE, "utf-8")  # type: ignore[attr-defined]


def _longname(name: str) -> bytes:
    return tarfile.TarInfo._create_gnu_long_header(  # type: ignore[attr-defined]
        name, tarfile.GNUTYPE_LONGNAME, "utf-8", "strict")


@pytest.mark.parametrize("headers, says", [
    # GNU tar takes the pax path, Python's tarfile the GNU long name that came first.
    (_longname("foo.json") + _pax({"path": "index.json"}), "is also named 'index.json' (pax path)"),
    # GNU tar takes GNU.sparse.name, Python's tarfile the pax path.
    (_pax({"GNU.sparse.name": "index.json", "path": "foo.json"}), "(pax GNU.sparse.name)"),
    # GNU tar cuts a name at its NUL, Python's tarfile keeps the NUL.
    (_pax({"path": "index.json\0x"}), "holds a NUL byte in its name"),
], ids=["longname-and-pax-path", "sparse-name-and-path", "nul-in-path"])
def test_a_member_tar_programs_name_differently_is_refused(tmp_path: Path, headers: bytes, says: str) -> None:
    """The same member header read as `index.json` by GNU tar and as another name by Python:
    a second index that only `tar -x` (and a push of the unpacked folder) would see."""
    source = tmp_path / "src.tar"
    write_oci_archive(ARTIFACT, source, EPOCH)
    good = source.read_bytes()
    with tarfile.open(source) as opened:
        end = opened.offset  # where the end-of-archive blocks begin
    target = tmp_path / "hostile.tar"
    target.write_bytes(good[:end] + _raw_member("foo.json", b"{}", headers) + b"\0" * (2 * tarfile.BLOCKSIZE))
    with pytest.raises(ArchiveError, match=re.escape(says)) as caught:
        open_archive(target)
    assert "tar programs read it as different files" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["../escape", "/tmp/abs", "./x/../index.json"])
def test_an_unsafe_member_is_refused_with_push_wording(tmp_path: Path, name: str) -> None:
    target = archive_with(tmp_path, [member(name)])
    with pytest.raises(ArchiveError, match=rf"^{target}: unsafe member '{name}' in the archive$"):
        LayoutReader(target)


def test_an_archive_xarch_writes_still_reads(tmp_path: Path) -> None:
    target = tmp_path / "img.tar"
    write_oci_archive(ARTIFACT, target, EPOCH)
    read_all(target)


# 3. Blobs that are no regular file


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda path: os.mkfifo(path), "a FIFO"),
        (lambda path: path.mkdir(), "a folder"),
        (lambda path: path.symlink_to(path.name), "a symlink loop"),
        (lambda path: path.symlink_to("/dev/zero"), "a device (a symlink to '/dev/zero')"),
        (lambda path: path.symlink_to("nowhere"), "a dangling symlink"),
    ],
)
def test_a_blob_that_is_no_regular_file_is_named_for_what_it_is(
    layout: Path, make: object, kind: str
) -> None:
    digest = first_layer()
    path = blob(layout, digest)
    path.unlink()
    make(path)  # type: ignore[operator]
    with pytest.raises(LayoutError) as caught:
        read_all(layout)  # a FIFO is never opened for reading: no hang
    assert (
        str(caught.value)
        == f"{layout}: blob {digest} is {kind}, not a regular file (blobs/sha256/{path.name})"
    )


def test_index_json_as_a_fifo_is_named(layout: Path) -> None:
    (layout / "index.json").unlink()
    os.mkfifo(layout / "index.json")
    with pytest.raises(LayoutError, match=rf"^{layout}: index.json is a FIFO, not a regular file$"):
        read_all(layout)


@pytest.mark.parametrize(
    ("kind", "link", "words"),
    [
        (tarfile.SYMTYPE, "/etc/passwd", "a symlink (to '/etc/passwd')"),
        (tarfile.LNKTYPE, "oci-layout", "a hard link (to 'oci-layout')"),
        (tarfile.FIFOTYPE, "", "a FIFO"),
    ],
)
def test_a_blob_member_that_is_no_regular_file_is_named(
    tmp_path: Path, kind: bytes, link: str, words: str
) -> None:
    source = tmp_path / "src.tar"
    write_oci_archive(ARTIFACT, source, EPOCH)
    digest = first_layer()
    name = f"blobs/sha256/{digest.removeprefix('sha256:')}"
    target = tmp_path / "hostile.tar"
    with tarfile.open(source) as original, tarfile.open(target, "w") as out:
        for info in original:
            if info.name == name:
                out.addfile(member(name, kind=kind, link=link)[0])
            else:
                out.addfile(info, original.extractfile(info) if info.isfile() else None)
    with pytest.raises(LayoutError) as caught:
        read_all(target)
    assert str(caught.value) == f"{target}: blob {digest} is {words}, not a regular file ({name})"


def test_inspect_names_the_layout_once(layout: Path) -> None:
    digest = first_layer()
    blob(layout, digest).unlink()
    os.mkfifo(blob(layout, digest))
    with pytest.raises(InputError) as caught:
        summarize_path(layout)
    assert str(caught.value).count(str(layout)) == 1
    assert str(caught.value).startswith(f"{layout}: blob {digest} is a FIFO")


def test_a_docker_archive_error_names_the_archive_once(tmp_path: Path) -> None:
    target = tmp_path / "d.tar"
    write_docker_archive(ARTIFACT.images[0], ["x:y"], target, EPOCH)
    with tarfile.open(target) as original, tarfile.open(tmp_path / "bad.tar", "w") as out:
        for info in original:
            data = original.extractfile(info).read() if info.isfile() else None  # type: ignore[union-attr]
            if info.name == "manifest.json":
                data = b'[{"Config": "blobs/sha256/' + b"b" * 64 + b'", "Layers": []}]'
                info.size = len(data)
            out.addfile(info, io.BytesIO(data) if data is not None else None)
    with pytest.raises(InputError) as caught:
        summarize_path(tmp_path / "bad.tar")
    assert str(caught.value).count(str(tmp_path / "bad.tar")) == 1


# 4. Media types and oci-layout


def test_an_index_entry_saying_index_for_a_manifest_is_refused(layout: Path) -> None:
    manifest = dict(FIRST_MANIFEST)
    digest = set_manifest(layout, manifest, entry_type=INDEX)
    with pytest.raises(
        LayoutError,
        match=re.escape(
            f"manifest {digest}: its mediaType '{MANIFEST}' differs from its descriptor's '{INDEX}'"
        ),
    ):
        read_all(layout)


def test_an_index_entry_saying_index_for_a_manifest_without_a_media_type_is_refused(layout: Path) -> None:
    manifest = dict(FIRST_MANIFEST)
    del manifest["mediaType"]
    set_manifest(layout, manifest, entry_type=INDEX)
    with pytest.raises(LayoutError, match=re.escape(f"mediaType '{INDEX}' names what is a manifest")):
        read_all(layout)


@pytest.mark.parametrize(
    "media_type", ["text/plain", "application/vnd.docker.distribution.manifest.v1+prettyjws"]
)
def test_a_manifest_whose_own_media_type_is_no_image_is_refused(layout: Path, media_type: str) -> None:
    manifest = {**FIRST_MANIFEST, "mediaType": media_type}
    set_manifest(layout, manifest)
    with pytest.raises(LayoutError, match=re.escape(f"its mediaType '{media_type}' differs")):
        read_all(layout)
    set_manifest(layout, manifest, entry_type=media_type)  # both lie alike: still no image
    with pytest.raises(
        LayoutError, match=re.escape(f"mediaType '{media_type}' is not an OCI or Docker v2 image")
    ):
        read_all(layout)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'{"imageLayoutVersion":"9.9.9"}', "imageLayoutVersion '9.9.9'"),
        (b"garbage", "not a JSON object"),
        (b"[]", "not a JSON object"),
        (b"{}", "imageLayoutVersion None"),
    ],
)
def test_an_oci_layout_file_other_than_version_1_0_0_is_refused(
    layout: Path, content: bytes, words: str
) -> None:
    (layout / "oci-layout").write_bytes(content)
    with pytest.raises(LayoutError) as caught:
        LayoutReader(layout)
    assert str(caught.value) == f'{layout}: oci-layout: {words}, not {{"imageLayoutVersion": "1.0.0"}}'


# 5. Plain words for JSON


def test_json_nested_too_deep_says_so() -> None:
    deep = b"[" * 5000 + b"]" * 5000
    with pytest.raises(DocumentError, match=r"^x: JSON nested deeper than 64 levels$"):
        parse_document(deep, "x", "index")
    with pytest.raises(BadDescriptor, match=r"^x: JSON nested deeper than 64 levels$"):
        json_object(deep, "x")


def test_a_number_of_thousands_of_digits_is_worded_plainly() -> None:
    data = b'{"manifests": [], "size": ' + b"9" * 5000 + b"}"
    with pytest.raises(DocumentError) as caught:
        parse_document(data, "x", "index")
    assert str(caught.value) == "x: a number of 5000 digits, more than 100"
    assert "set_int_max_str_digits" not in str(caught.value)


def test_push_names_a_fifo_blob_and_a_symlink_member_as_the_reader_does(tmp_path: Path, layout: Path) -> None:
    digest = first_layer()
    name = f"blobs/sha256/{digest.removeprefix('sha256:')}"
    blob(layout, digest).unlink()
    os.mkfifo(blob(layout, digest))
    with pytest.raises(
        LayoutError, match=rf"^{layout}: blob {digest} is a FIFO, not a regular file \({name}\)$"
    ):
        read_layout(layout)
    source = tmp_path / "src.tar"
    write_oci_archive(ARTIFACT, source, EPOCH)
    target = tmp_path / "hostile.tar"
    with tarfile.open(source) as original, tarfile.open(target, "w") as out:
        for info in original:
            if info.name == name:
                out.addfile(member(name, kind=tarfile.SYMTYPE, link="/etc/passwd")[0])
            else:
                out.addfile(info, original.extractfile(info) if info.isfile() else None)
    with pytest.raises(LayoutError, match=rf"^{target}: blob {digest} is a symlink \(to '/etc/passwd'\)"):
        with layout_folder(target):
            pass


def test_load_names_the_layout_once(layout: Path) -> None:
    digest = first_layer()
    blob(layout, digest).unlink()
    os.mkfifo(blob(layout, digest))
    with pytest.raises(DockerError) as caught:
        read_layout_image(layout, None)
    assert str(caught.value).startswith(f"{layout}: blob {digest} is a FIFO, not a regular file")
    assert str(caught.value).count(str(layout)) == 1
