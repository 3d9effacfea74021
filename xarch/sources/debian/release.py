"""InRelease: fetch, verify with gpgv, parse only what gpgv verified, honour Valid-Until.

gpgv (not an OpenPGP library) because it is what apt itself trusts, it is installed with
gpg, and its --status-fd output is a stable machine interface.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

from debian.deb822 import Release as Deb822Release

from xarch.sources.debian import http
from xarch.sources.debian.config import DebianSource
from xarch.sources.debian.errors import ReleaseExpired, SignatureError


@dataclass(frozen=True)
class IndexFile:
    """One file of Release's SHA256 field: SIZE in bytes and SHA256 (64 hex digits)."""

    size: int
    sha256: str


@dataclass(frozen=True)
class Release:
    """What a verified dists/SUITE/InRelease says (Debian repository format: Date, Valid-Until,
    Architectures, Components, SHA256 as FILES), who signed it and the file's sha256."""

    suite: str  # as the recipe names it
    url: str  # of dists/<suite>/, with a trailing slash
    date: datetime
    valid_until: datetime | None
    architectures: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str  # fingerprint from gpgv's VALIDSIG
    inrelease_sha256: str
    files: dict[str, IndexFile] = field(default_factory=dict)  # path below dists/<suite>/

    def lock_record(self) -> dict[str, str]:
        """What xarch.lock keeps of it: {date, valid_until (when set), inrelease_sha256,
        signed_by}, dates as RFC 2822 text in UTC."""
        record = {
            "date": _rfc2822(self.date),
            "inrelease_sha256": self.inrelease_sha256,
            "signed_by": self.signed_by,
        }
        if self.valid_until is not None:
            record["valid_until"] = _rfc2822(self.valid_until)
        return record


def fetch_release(source: DebianSource, suite: str, now: datetime | None = None) -> Release:
    """Download, verify and parse dists/SUITE/InRelease of SOURCE, Valid-Until judged at NOW
    (default: the snapshot's instant, else now). Raises DownloadError, SignatureError and
    ReleaseExpired (exit 4)."""
    url = f"{source.base_url()}/dists/{suite}/"
    raw = http.get_bytes(url + "InRelease")
    text, fingerprint = verify_inrelease(raw, source.keyring, source.fingerprints, what=url + "InRelease")
    reference = now or _reference_time(source)
    return parse_release(text, suite, url, fingerprint, hashlib.sha256(raw).hexdigest(), reference)


def verify_inrelease(data: bytes, keyring: Path, fingerprints: list[str], what: str) -> tuple[str, str]:
    """The signed text of DATA and the fingerprint that signed it, or SignatureError (exit 4:
    no gpgv, no KEYRING, a bad, unknown, expired or revoked signature, a signer not in FINGERPRINTS).

    Only gpgv's --output (the text the signature covers) is returned: anything outside
    the signed block of the armoured file is never read.
    """
    if shutil.which("gpgv") is None:
        raise SignatureError("gpgv is not installed (apt-get install gpgv); cannot verify " + what)
    if not keyring.is_file():
        raise SignatureError(f"keyring {keyring} does not exist; cannot verify {what}")
    with tempfile.TemporaryDirectory(prefix="xarch-gpgv-") as tmp:
        signed = Path(tmp, "InRelease")
        signed.write_bytes(data)
        output = Path(tmp, "Release")
        # An empty homedir: the host's trustedkeys.kbx must never take part.
        home = Path(tmp, "home")
        home.mkdir(mode=0o700)
        result = subprocess.run(
            ["gpgv", "--homedir", str(home), "--keyring", str(keyring.resolve()), "--status-fd", "1",
             "--output", str(output), str(signed)],
            capture_output=True, env={**os.environ, "LC_ALL": "C"}, check=False,
        )
        status = result.stdout.decode(errors="replace").splitlines()
        fingerprint = _trusted_signer(status, fingerprints, what)
        if not output.is_file():
            raise SignatureError(f"{what}: gpgv produced no verified text")
        return output.read_text(encoding="utf-8"), fingerprint


def _trusted_signer(status: list[str], pinned: list[str], what: str) -> str:
    words = [line.split() for line in status if line.startswith("[GNUPG:] ")]
    if any(w[1] == "BADSIG" for w in words if len(w) > 1):
        raise SignatureError(f"{what}: BAD signature (the file was altered or is not from this archive)")
    good = {w[2] for w in words if len(w) > 2 and w[1] == "GOODSIG"}  # long key ids
    valid: list[str] = []
    for w in words:
        if len(w) > 2 and w[1] == "VALIDSIG":
            # GOODSIG (good, unexpired, unrevoked key) must accompany VALIDSIG.
            signer, primary = w[2], (w[11] if len(w) > 11 else w[2])
            if signer[-16:] in good or primary[-16:] in good:
                valid.append(signer if not pinned or signer in pinned else primary)
    if not valid:
        missing = [w[2] for w in words if len(w) > 2 and w[1] in ("NO_PUBKEY", "ERRSIG")]
        stale = {w[1]: w[2] for w in words if len(w) > 2 and w[1] in ("EXPKEYSIG", "REVKEYSIG", "EXPSIG")}
        hint = f" (unknown key {missing[0]})" if missing else ""
        if "REVKEYSIG" in stale:
            hint = f" (key {stale['REVKEYSIG']} is revoked)"
        elif "EXPKEYSIG" in stale:
            hint = f" (key {stale['EXPKEYSIG']} has expired)"
        elif "EXPSIG" in stale:
            hint = " (the signature has expired)"
        raise SignatureError(f"{what}: no valid signature from the keyring{hint}")
    if pinned:
        for fingerprint in valid:
            if fingerprint in pinned:
                return fingerprint
        raise SignatureError(f"{what}: signed by {valid[0]}, which is not one of the pinned fingerprints")
    return valid[0]


def parse_release(text: str, suite: str, url: str, fingerprint: str, inrelease_sha256: str,
                  now: datetime) -> Release:
    """TEXT, the Release text gpgv verified, as a Release of SUITE at URL (dists/SUITE/);
    NOW an aware datetime. Raises SignatureError (exit 4) when it is for another suite or its
    Date or Valid-Until cannot be read, ReleaseExpired (exit 4) when Valid-Until is before NOW,
    ValueError for a SHA256 line whose size is not a number."""
    fields = Deb822Release(text)
    names = {fields.get("Suite"), fields.get("Codename")}
    if suite not in names and suite.split("/")[0] not in names:
        raise SignatureError(f"{url}InRelease is signed for {fields.get('Codename')}, not for {suite}")
    date = _parse_date(fields.get("Date"), url, "Date")
    valid_until = _parse_date(fields["Valid-Until"], url, "Valid-Until") if "Valid-Until" in fields else None
    if valid_until is not None and valid_until < now:
        raise ReleaseExpired(
            f"{url}InRelease expired on {_rfc2822(valid_until)} (Valid-Until); the mirror is stale or "
            "replaying an old archive (for an old archive use sources.debian.snapshot)"
        )
    files = {}
    for item in fields.get("SHA256", []):
        files[item["name"]] = IndexFile(int(item["size"]), item["sha256"])
    return Release(
        suite=suite,
        url=url,
        date=date,
        valid_until=valid_until,
        architectures=tuple(fields.get("Architectures", "").split()),
        components=tuple(fields.get("Components", "").split()),
        signed_by=fingerprint,
        inrelease_sha256=inrelease_sha256,
        files=files,
    )


def _reference_time(source: DebianSource) -> datetime:
    """A snapshot is judged at its own instant; anything else now."""
    if source.snapshot:
        return datetime.strptime(source.snapshot, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc)


def _parse_date(value: str | None, url: str, name: str) -> datetime:
    if not value:
        raise SignatureError(f"{url}InRelease has no {name} field")
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise SignatureError(f"{url}InRelease: {name} {value!r} is not a date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _rfc2822(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S UTC")
