"""Archives users hand in (xarch/oci/archive.py): a file that is no tar, a tar cut short (even
exactly between two members) or a member cut short is one error naming the file. And the push
journal of unfinished uploads (xarch/registry/uploads.py): private, per blob, never fatal."""

from __future__ import annotations

import io
import stat
import tarfile
from pathlib import Path

import pytest

from xarch.oci.archive import ArchiveError, open_archive, read_member
from xarch.registry.uploads import UploadJournal


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_dir("dir"))
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _dir(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


def test_a_tar_is_indexed_by_its_regular_files(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "a.tar", {"./index.json": b"{}", "blobs/x": b"x" * 1000})
    tar, members = open_archive(path)
    with tar:
        assert sorted(members) == ["blobs/x", "index.json"]  # "./" dropped, folders left out
        assert read_member(tar, members["blobs/x"], path) == b"x" * 1000


def test_a_file_that_is_no_tar_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a tar\n")
    with pytest.raises(ArchiveError, match=f"^{path}: not a tar archive$"):
        open_archive(path)
    with pytest.raises(ArchiveError) as caught:
        open_archive(tmp_path / "none.tar")
    assert str(caught.value) == f"{tmp_path}/none.tar: cannot read (No such file or directory)"


def test_a_tar_cut_between_two_members_is_refused(tmp_path: Path) -> None:
    whole = write_tar(tmp_path / "whole.tar", {"a": b"a" * 512, "b": b"b" * 512}).read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole[: 512 * 3])  # the dir header, a's header and a's one data block: b is gone
    with pytest.raises(ArchiveError) as caught:
        open_archive(cut)
    assert str(caught.value).startswith(f"{cut}: truncated")


def test_a_member_cut_short_is_named(tmp_path: Path) -> None:
    whole = write_tar(tmp_path / "whole.tar", {"big": b"z" * 5000}).read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole[:2048])
    with pytest.raises(ArchiveError) as caught:
        tar, members = open_archive(cut)
        with tar:
            read_member(tar, members["big"], cut)
    assert str(caught.value).startswith(f"{cut}: ") and "truncated" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_journal_keeps_one_private_url_per_blob(tmp_path: Path) -> None:
    journal = UploadJournal(tmp_path / "uploads")
    assert journal.get("r.example", "app", "sha256:aa") is None
    journal.put("r.example", "app", "sha256:aa", "https://r.example/v2/app/blobs/uploads/1")
    journal.put("r.example", "other", "sha256:aa", "https://r.example/v2/other/blobs/uploads/2")
    assert journal.get("r.example", "app", "sha256:aa") == "https://r.example/v2/app/blobs/uploads/1"
    assert journal.get("r.example", "other", "sha256:aa") == "https://r.example/v2/other/blobs/uploads/2"
    (entry,) = [p for p in (tmp_path / "uploads").iterdir()
                if b"/app/" in p.read_bytes()]
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600  # upload URLs carry the registry's state
    journal.drop("r.example", "app", "sha256:aa")
    assert journal.get("r.example", "app", "sha256:aa") is None
    journal.drop("r.example", "app", "sha256:aa")  # twice: no error


def test_a_damaged_or_unwritable_journal_costs_only_the_resume(tmp_path: Path) -> None:
    journal = UploadJournal(tmp_path / "uploads")
    journal.put("h", "r", "d", "https://h/u")
    for path in (tmp_path / "uploads").iterdir():
        path.write_text("[not, an, object")
    assert journal.get("h", "r", "d") is None
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    UploadJournal(blocked / "uploads").put("h", "r", "d", "https://h/u")  # cannot write: no error
