"""A step's secrets and CA certificates (xarch/run/secretmount.py): files on a RAM file system,
mode 0400, bound read-only at /run/secrets, gone when the step ends; a stage root's CA bundle is
read only when no symlink leads to it; mount points a step did not write to are removed."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

import pytest

from xarch.errors import BuildError
from xarch.run.options import Secret
from xarch.run.sandbox import Bind
from xarch.run.secretmount import (
    CA_BUNDLE,
    EXTRA_CA,
    SECRETS_DIR,
    SYSTEM_BUNDLE,
    ca_env,
    mount_points,
    secret_files,
    step_secrets,
)

SECRETS = {"token": Secret("token", b"s3cret\n", "env TOKEN"),
           "ca": Secret("ca", b"-----CA-----", "file ca.pem")}


def stage_root(tmp_path: Path, bundle: bytes | None = b"SYSTEM CAS\n") -> Path:
    root = tmp_path / "root"
    (root / "etc" / "ssl" / "certs").mkdir(parents=True)
    if bundle is not None:
        (root / "etc" / "ssl" / "certs" / "ca-certificates.crt").write_bytes(bundle)
    return root


def test_a_step_without_secrets_gets_nothing(tmp_path: Path) -> None:
    with step_secrets(stage_root(tmp_path), SECRETS, [], []) as mounts:
        assert mounts.binds == () and dict(mounts.env) == {}


def test_secrets_are_read_only_files_removed_after_the_step(tmp_path: Path) -> None:
    with step_secrets(stage_root(tmp_path), SECRETS, ["token"], []) as mounts:
        (bind,) = mounts.binds
        assert bind.target == SECRETS_DIR and bind.read_only
        secret = bind.source / "token"
        assert secret.read_bytes() == b"s3cret\n"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o400
        assert sorted(p.name for p in bind.source.iterdir()) == ["token"]
        assert dict(mounts.env) == {}  # no CA: no CA variables
    assert not bind.source.exists()


def test_ca_certificates_join_the_stage_roots_bundle(tmp_path: Path) -> None:
    with step_secrets(stage_root(tmp_path), SECRETS, [], ["ca"]) as mounts:
        folder_bind, bundle_bind = mounts.binds
        assert (folder_bind.source / CA_BUNDLE).read_bytes() == b"SYSTEM CAS\n-----CA-----\n"
        assert (folder_bind.source / EXTRA_CA).read_bytes() == b"-----CA-----\n"
        assert bundle_bind.target == SYSTEM_BUNDLE and bundle_bind.source == folder_bind.source / CA_BUNDLE
        assert dict(mounts.env) == ca_env()
    assert ca_env()["SSL_CERT_FILE"] == str(PurePosixPath("/run/secrets") / CA_BUNDLE)


def test_a_bundle_behind_a_symlink_is_never_read(tmp_path: Path) -> None:
    host_file = tmp_path / "host-secret"
    host_file.write_bytes(b"HOST ONLY\n")
    root = stage_root(tmp_path, bundle=None)
    (root / "etc" / "ssl" / "certs" / "ca-certificates.crt").symlink_to(host_file)
    with step_secrets(root, SECRETS, [], ["ca"]) as mounts:
        (folder_bind,) = mounts.binds  # no bundle of the root to replace
        assert (folder_bind.source / CA_BUNDLE).read_bytes() == b"-----CA-----\n"


def test_mount_points_are_made_and_removed_when_left_empty(tmp_path: Path) -> None:
    root = stage_root(tmp_path)
    source = tmp_path / "secrets"
    source.mkdir()
    with mount_points(root, [Bind(source, SECRETS_DIR, read_only=True, staged=False)]):
        assert (root / "run" / "secrets").is_dir()
    assert not (root / "run").exists()
    with mount_points(root, [Bind(source, SECRETS_DIR, read_only=True, staged=False)]):
        (root / "run" / "kept").write_text("the step's output")
    assert (root / "run" / "kept").exists() and not (root / "run" / "secrets").exists()


def test_a_mount_point_through_a_symlink_is_refused(tmp_path: Path) -> None:
    root = stage_root(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (root / "run").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BuildError, match="run in the stage root is not a folder"):
        with mount_points(root, [Bind(tmp_path, SECRETS_DIR, read_only=True, staged=False)]):
            pass
    assert os.listdir(tmp_path / "elsewhere") == []


def test_secret_files_for_buildx_are_removed_after(tmp_path: Path) -> None:
    with secret_files(SECRETS) as files:
        assert files["token"].read_bytes() == b"s3cret\n"
        assert stat.S_IMODE(files["ca"].stat().st_mode) == 0o400
    assert not files["token"].exists()
