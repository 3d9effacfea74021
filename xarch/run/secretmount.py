"""A step's secrets and extra CA certificates: files in RAM, bound read-only at /run/secrets.

For one step, `step_secrets` writes the secrets it lists (xarch.run.options.Secret) into a
fresh folder on a RAM file system (/dev/shm when writable), mode 0400 and owned by the
id that is uid 0 in the sandbox, and yields a read-only Bind of it at /run/secrets plus
the environment the step gets for its CA certificates. The folder is removed when the
step ends, whatever happened. The stage root only ever holds the empty mount point, and
only while the step runs: the stage's outputs, the step cache and the image never see a
secret (what the step itself copies out is its doing, as with BuildKit).

CA certificates (`ca_certificates: [ID]`): the secrets' PEM text is appended to the
stage root's own bundle (/etc/ssl/certs/ca-certificates.crt, when it is a regular file)
into /run/secrets/.xarch-ca-bundle.pem, which SSL_CERT_FILE (OpenSSL), PIP_CERT,
REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE and GIT_SSL_CAINFO name; NODE_EXTRA_CA_CERTS names the
extra certificates alone (Node adds them to its own list). When the root has that bundle
file, the combined bundle is also bound over it for the step, so tools that read only the
system path (apt, wget) trust the extra CAs too; the file on disk is not changed.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from xarch.errors import BuildError
from xarch.run.options import Secret
from xarch.run.sandbox import Bind, host_owner, running_as_root

SECRETS_DIR = PurePosixPath("/run/secrets")
CA_BUNDLE = ".xarch-ca-bundle.pem"
EXTRA_CA = ".xarch-extra-ca.pem"
SYSTEM_BUNDLE = PurePosixPath("/etc/ssl/certs/ca-certificates.crt")
# The variables the common TLS clients read for a CA bundle (OpenSSL, pip, requests, curl, git).
BUNDLE_VARIABLES = ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO")


@dataclass(frozen=True)
class StepMounts:
    """What one step gets: binds for the sandbox, extra environment, mount points to remove."""

    binds: tuple[Bind, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


def ca_env() -> dict[str, str]:
    """The environment of a step with ca_certificates (fixed paths: the key does not see the CAs):
    BUNDLE_VARIABLES → /run/secrets/.xarch-ca-bundle.pem, NODE_EXTRA_CA_CERTS → the extra CAs
    alone. Raises nothing."""
    env = {name: str(SECRETS_DIR / CA_BUNDLE) for name in BUNDLE_VARIABLES}
    env["NODE_EXTRA_CA_CERTS"] = str(SECRETS_DIR / EXTRA_CA)
    return env


def _ram_folder() -> Path:
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None
    return Path(tempfile.mkdtemp(prefix="xarch-secrets-", dir=base))


def _write(folder: Path, name: str, data: bytes) -> None:
    path = folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _system_bundle(rootfs: Path) -> bytes | None:
    """The stage root's CA bundle when it is a regular file reached without a symlink, else None."""
    path = rootfs
    for part in SYSTEM_BUNDLE.parts[1:]:
        path = path / part
        try:
            info = os.lstat(path)
        except OSError:
            return None
        if stat.S_ISLNK(info.st_mode):
            return None  # a link may lead out of the root: never read the host's files
    return path.read_bytes() if stat.S_ISREG(info.st_mode) else None


@contextmanager
def step_secrets(rootfs: Path, secrets: Mapping[str, Secret], ids: Sequence[str],
                 ca_ids: Sequence[str]) -> Iterator[StepMounts]:
    """The mounts of a step listing secrets IDS and CA secrets CA_IDS (all in SECRETS): files of
    mode 0400 in a RAM folder (/dev/shm when writable), bound read-only at /run/secrets, and the
    CA bundle (module doc); the folder is removed on exit. KeyError for an id not in SECRETS (the
    caller checks first); OSError when the folder cannot be written."""
    if not ids and not ca_ids:
        yield StepMounts()
        return
    folder = _ram_folder()
    env: dict[str, str] = {}
    binds: list[Bind] = []
    try:
        for secret_id in dict.fromkeys([*ids, *ca_ids]):
            _write(folder, secret_id, secrets[secret_id].value)
        if ca_ids:
            extra = b"".join(secrets[i].value.rstrip(b"\n") + b"\n" for i in ca_ids)
            system = _system_bundle(rootfs)
            base = system.rstrip(b"\n") + b"\n" if system else b""
            _write(folder, CA_BUNDLE, base + extra)
            _write(folder, EXTRA_CA, extra)
            env.update(ca_env())
            if system is not None:
                # Not staged: the folder is one the sandbox id may enter (see sandbox.Bind).
                binds.append(Bind(folder / CA_BUNDLE, SYSTEM_BUNDLE, read_only=True, staged=False))
        folder.chmod(0o500)
        if running_as_root():
            owner = host_owner()
            for path in (*folder.iterdir(), folder):
                os.lchown(path, owner, owner)
        binds.insert(0, Bind(folder, SECRETS_DIR, read_only=True, staged=False))
        yield StepMounts(tuple(binds), env)
    finally:
        folder.chmod(0o700)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def mount_points(rootfs: Path, binds: Sequence[Bind]) -> Iterator[None]:
    """Create the folders BINDS need in ROOTFS (never through a symlink), and remove those
    that are still empty afterwards: an empty /run/secrets must not reach a stage's output.
    Only folder binds get a mount point (a file bind's target exists). Raises BuildError
    (exit 2) when a path on the way is a symlink or not a folder."""
    created: list[Path] = []
    try:
        for bind in binds:
            if bind.source.is_dir():
                path = rootfs
                for part in bind.target.parts[1:]:
                    path = path / part
                    if path.is_symlink() or (path.exists() and not path.is_dir()):
                        raise BuildError(f"cannot mount {bind.target} for a step: {path.relative_to(rootfs)} "
                                         "in the stage root is not a folder")
                    if not path.exists():
                        path.mkdir(mode=0o755)
                        created.append(path)
        yield
    finally:
        for path in reversed(created):
            try:
                path.rmdir()
            except OSError:
                pass  # the step wrote there: its output


@contextmanager
def secret_files(secrets: Mapping[str, Secret]) -> Iterator[dict[str, Path]]:
    """Each secret in a file of its own (RAM, mode 0400, the caller's), for `docker buildx build
    --secret id=ID,src=FILE`; yields id → path, removed when the context ends. OSError when the
    RAM folder cannot be written."""
    if not secrets:
        yield {}
        return
    folder = _ram_folder()
    try:
        for secret_id, secret in secrets.items():
            _write(folder, secret_id, secret.value)
        yield {secret_id: folder / secret_id for secret_id in secrets}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
