"""Key files as `cosign generate-key-pair` writes them, and the signatures cosign makes with them.

The private key file is PEM `ENCRYPTED SIGSTORE PRIVATE KEY` (cosign < 2.0: `ENCRYPTED COSIGN
PRIVATE KEY`) around JSON (sigstore's `encrypted` package):

    {"kdf": {"name": "scrypt", "params": {"N": 65536, "r": 8, "p": 1}, "salt": B64},
     "cipher": {"name": "nacl/secretbox", "nonce": B64}, "ciphertext": B64}

the secretbox key is scrypt(password, salt, N, r, p, 32 bytes), and the plaintext a PKCS#8 DER
private key. The public key is PEM `PUBLIC KEY` (SubjectPublicKeyInfo). Signatures are what
sigstore's signers make: ECDSA over SHA-256 (DER), Ed25519, RSA PKCS#1 v1.5 over SHA-256.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from xarch.errors import InputError

PRIVATE_PEM_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
PASSWORD_ENV = "COSIGN_PASSWORD"
# A key file is small; its scrypt cost is bounded so a hostile file cannot take the machine's memory
# (cosign writes N=2^16, r=8, p=1: 64 MiB).
_MAX_KEY_FILE = 64 * 1024
_MAX_PASSWORD = 4096  # bytes of a --password-stdin line
_MAX_SCRYPT_MEMORY = 1 << 30

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


class KeyFileError(InputError):
    """A key file that cannot be read, decrypted or used (exit 2); the message names the file."""


@dataclass(frozen=True)
class SigningKey:
    """A decrypted private key and the file it came from."""

    path: Path
    key: PrivateKey

    def sign(self, data: bytes) -> bytes:
        """The raw signature over DATA, as cosign makes it with this kind of key."""
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return self.key.sign(data, ec.ECDSA(hashes.SHA256()))
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.key.sign(data)

    def public(self) -> VerifyKey:
        """The matching public key, with the same file path (for messages)."""
        return VerifyKey(self.path, self.key.public_key())


@dataclass(frozen=True)
class VerifyKey:
    """A public key and the file it came from."""

    path: Path
    key: PublicKey

    def verifies(self, signature: bytes, data: bytes) -> bool:
        """True when SIGNATURE is this key's over DATA."""
        try:
            if isinstance(self.key, ec.EllipticCurvePublicKey):
                self.key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            elif isinstance(self.key, rsa.RSAPublicKey):
                self.key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            else:
                self.key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


def _read_small(path: Path, what: str) -> bytes:
    from xarch.smallfile import SmallFileError, read_small

    try:  # a FIFO blocked here, a folder or /dev/zero read as "no such file"
        return read_small(path, _MAX_KEY_FILE)
    except SmallFileError as error:
        raise KeyFileError(f"{what} {path}: {error}; not a key file") from None


def _pem_body(text: str, types: tuple[str, ...], path: Path, what: str) -> bytes:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for pem_type in types:
        begin, end = f"-----BEGIN {pem_type}-----", f"-----END {pem_type}-----"
        if begin in lines and end in lines and lines.index(begin) < lines.index(end):
            body = "".join(lines[lines.index(begin) + 1 : lines.index(end)])
            try:
                return base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                raise KeyFileError(f"{what} {path}: the PEM body is not base64") from None
    raise KeyFileError(f"{what} {path}: no PEM block {' or '.join(types)} (a file from "
                    "`cosign generate-key-pair`?)")


def _b64_field(obj: Any, name: str, path: Path) -> bytes:
    value = obj.get(name) if isinstance(obj, dict) else None
    if not isinstance(value, str):
        raise KeyFileError(f"private key {path}: {name} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"private key {path}: {name} is not base64") from None


def _scrypt_params(kdf: Any, path: Path) -> tuple[int, int, int]:
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt" or not isinstance(kdf.get("params"), dict):
        raise KeyFileError(f"private key {path}: kdf must be scrypt")
    params = kdf["params"]
    values = [params.get(k) for k in ("N", "r", "p")]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise KeyFileError(f"private key {path}: kdf params N, r, p must be positive integers")
    n, r, p = values
    if n & (n - 1) or n < 2 or 128 * n * r * p > _MAX_SCRYPT_MEMORY:
        raise KeyFileError(f"private key {path}: scrypt N={n} r={r} p={p} out of bounds "
                        f"(N a power of two, at most {_MAX_SCRYPT_MEMORY >> 20} MiB)")
    return n, r, p


def load_signing_key(path: Path, password: bytes) -> SigningKey:
    """Decrypt the cosign private key file at PATH with PASSWORD.

    Raises KeyFileError (exit 2) naming PATH when the file is not such a key, the password is wrong,
    or the key is of a kind cosign does not sign with. The password never appears in a message.
    """
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    raw = _read_small(path, "private key")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError(f"private key {path}: not a PEM text file") from None
    body = _pem_body(text, PRIVATE_PEM_TYPES, path, "private key")
    try:
        envelope = json.loads(body)
    except (ValueError, RecursionError):
        raise KeyFileError(f"private key {path}: the PEM body is not JSON") from None
    if not isinstance(envelope, dict):
        raise KeyFileError(f"private key {path}: the PEM body is not a JSON object")
    n, r, p = _scrypt_params(envelope.get("kdf"), path)
    cipher = envelope.get("cipher")
    if not isinstance(cipher, dict) or cipher.get("name") != "nacl/secretbox":
        raise KeyFileError(f"private key {path}: cipher must be nacl/secretbox")
    salt = _b64_field(envelope["kdf"], "salt", path)
    nonce = _b64_field(cipher, "nonce", path)
    ciphertext = _b64_field(envelope, "ciphertext", path)
    if len(nonce) != SecretBox.NONCE_SIZE:
        raise KeyFileError(f"private key {path}: nonce is {len(nonce)} bytes, not {SecretBox.NONCE_SIZE}")
    secret = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=SecretBox.KEY_SIZE,
                            maxmem=_MAX_SCRYPT_MEMORY + (1 << 20))
    try:
        der = SecretBox(secret).decrypt(ciphertext, nonce)
    except CryptoError:
        raise KeyFileError(f"private key {path}: wrong password (from ${PASSWORD_ENV} or "
                        "--password-stdin), or the file is damaged") from None
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFileError(f"private key {path}: decrypted, but not a PKCS#8 private key") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey)):
        raise KeyFileError(f"private key {path}: a {type(key).__name__}; cosign signs with ECDSA, "
                        "Ed25519 or RSA keys")
    return SigningKey(path, key)


def load_verify_key(path: Path) -> VerifyKey:
    """The PEM public key (`cosign.pub`) at PATH; KeyFileError (exit 2) naming PATH when it is not one."""
    raw = _read_small(path, "public key")
    try:
        key = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        hint = " (that is the private key; give the .pub file)" if b"PRIVATE KEY" in raw else ""
        raise KeyFileError(f"public key {path}: not a PEM public key{hint}") from None
    if not isinstance(key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, rsa.RSAPublicKey)):
        raise KeyFileError(f"public key {path}: a {type(key).__name__}; cosign verifies ECDSA, Ed25519 "
                        "or RSA keys")
    return VerifyKey(path, key)


def read_password(from_stdin: bool, path: Path) -> bytes:
    """The key's password: one line of standard input with FROM_STDIN, else $COSIGN_PASSWORD (which
    may be empty, as cosign allows), else a prompt on a terminal. Never echoed or printed.

    KeyFileError (exit 2) when there is none to be had, or stdin's is implausibly long.
    """
    if from_stdin:
        # Bounded: `--password-stdin < /dev/zero` would otherwise read until memory runs out.
        line = sys.stdin.buffer.readline(_MAX_PASSWORD + 2)
        if len(line.rstrip(b"\r\n")) > _MAX_PASSWORD:
            raise KeyFileError(f"private key {path}: the password on standard input is longer than "
                               f"{_MAX_PASSWORD} bytes (is it the right input?)")
        return line.rstrip(b"\r\n")
    if PASSWORD_ENV in os.environ:
        return os.environ[PASSWORD_ENV].encode()
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(f"Password for {path}: ").encode()
    raise KeyFileError(f"private key {path}: no password: set ${PASSWORD_ENV} or pass --password-stdin")


def signing_key_from(path: Path, password_stdin: bool) -> SigningKey:
    """Read the password the user chose a way to give, then decrypt PATH (see load_signing_key)."""
    # The file's shape first: a public key given by mistake is named before a password is asked for.
    _pem_body(_read_small(path, "private key").decode("ascii", "replace"), PRIVATE_PEM_TYPES, path,
              "private key")
    return load_signing_key(path, read_password(password_stdin, path))
