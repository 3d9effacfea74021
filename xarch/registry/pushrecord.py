"""Push records: a finished `xarch push` remembered by the bytes of what it read, and the two
questions that tell whether pushing it again would change anything on the registry.

A re-push of an unchanged layout asks the registry two things (xarch.registry.push.push_source):
does it hold the top manifest by digest, and does the tag name it. Finding that out the full
way costs loading requests, pydantic and click, and reading and checking the layout: about
0.4 s, where skopeo takes 0.07 s. A push record (kept beside build records, xarch.records)
holds the inputs the push read (its Witness: the layout's index.json and manifests, the Docker
config), where its requests went and what it printed. xarch.cli.pushreplay replays it when every
input is unchanged and the registry answers both questions as the record expects, over
http.client; any other answer runs the full push.

Replayed only when nothing could differ from the full path's requests: no credentials were sent
(an anonymous registry; a challenge or a 401 means the full push), no proxy from the environment
for the registry's scheme, and no attachment was pushed. TLS is verified against the CA bundle
requests would use.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from xarch.errors import XarchError
from xarch.oci.digest import hex_of
from xarch.records import FORMAT, RecordError, Witness, record_json

KIND = "push"
# The environment variables that make requests send a request of SCHEME through a proxy
# (urllib.request.getproxies_environment, as requests.utils.get_environ_proxies reads them).
_PROXY_ENV = {"http": ("http_proxy", "all_proxy"), "https": ("https_proxy", "all_proxy")}


@dataclass(frozen=True)
class PushRecord:
    """A finished push: its inputs (Witness); ORIGIN (`http://host[:port]` or `https://…`, where
    its requests went); the repository and the TAG it wrote; the top's DIGEST and MEDIA_TYPE;
    the REFERENCE and MANIFESTS ({platform name: digest}) it printed; BLOBS, [digest, size] of every
    config and layer under the top, once each, in order (a re-push reports them as already there)."""

    witness: Witness
    origin: str
    repository: str
    tag: str
    digest: str
    media_type: str
    reference: str
    manifests: dict[str, str] = field(default_factory=dict)
    blobs: list[list[Any]] = field(default_factory=list)

    def to_json(self) -> bytes:
        """The record as sorted, compact ASCII JSON, with its FORMAT and KIND."""
        return record_json({"format": FORMAT, "kind": KIND, **self.witness.fields(), "origin": self.origin,
                            "repository": self.repository, "tag": self.tag, "digest": self.digest,
                            "media_type": self.media_type, "reference": self.reference,
                            "manifests": self.manifests, "blobs": self.blobs})

    @classmethod
    def from_json(cls, data: bytes) -> PushRecord:
        """Parse DATA; RecordError for anything but a push record of this FORMAT. Every field that
        goes into a URL or onto the terminal is checked here (a record is a file in the cache)."""
        from xarch.registry.reference import parse_reference

        try:
            raw = json.loads(data)
            if raw["format"] != FORMAT or raw["kind"] != KIND:
                raise RecordError("another kind of record")
            witness = Witness.from_fields(raw)
            scheme, _, host = str(raw["origin"]).partition("://")
            # One parse checks host, repository, tag and digest alike (a bad one: InvalidReference).
            ref = parse_reference(f"{host}/{raw['repository']}:{raw['tag']}@{raw['digest']}")
            hex_of(raw["digest"])
            manifests, blobs = raw["manifests"], raw["blobs"]
            if not (scheme in ("http", "https") and ref.repository == raw["repository"]
                    and raw["reference"].endswith("@" + raw["digest"])
                    and isinstance(raw["media_type"], str) and raw["media_type"].isascii()
                    and raw["media_type"].isprintable()
                    and isinstance(manifests, dict)
                    and all(isinstance(v, str) and hex_of(v) for v in manifests.values())
                    and isinstance(blobs, list)
                    and all(isinstance(b, list) and len(b) == 2 and hex_of(b[0]) and type(b[1]) is int
                            and b[1] >= 0 for b in blobs)):
                raise RecordError("malformed result")
            parse_reference(raw["reference"])  # what is printed is a reference, nothing else
            return cls(witness, raw["origin"], raw["repository"], raw["tag"], raw["digest"],
                       raw["media_type"], raw["reference"], manifests, blobs)
        except (ValueError, KeyError, TypeError, AttributeError, XarchError) as error:
            # (XarchError: InvalidReference from parse_reference)
            raise RecordError(f"malformed record: {error}") from None


def mismatch(record: PushRecord, ref_text: str, files_hold_digests: bool) -> str:
    """Why RECORD cannot be the push of REF_TEXT (the command line's REF), or "": its registry,
    repository, tag and printed reference must be REF's, and, with FILES_HOLD_DIGESTS (a layout
    folder pushed as it is: no oci-archive, no --format docker), the top and every platform
    manifest must be files the push read. A record put together by hand or from two pushes
    never speaks for another registry or digest."""
    from xarch.registry.reference import parse_reference

    ref = parse_reference(ref_text)
    if record.origin.partition("://")[2] != ref.api_host or record.repository != ref.repository:
        return "it is another registry's or repository's"
    if (ref.tag and ref.tag != record.tag) or not record.reference.startswith(f"{ref.with_tag(record.tag)}@"):
        return "it names another tag or reference"
    if files_hold_digests:
        read = {f"sha256:{witness[1]}" for witness in record.witness.files.values()}
        if record.digest not in read or not set(record.manifests.values()) <= read:
            return "its digests are not those of the files it read"
    return ""


def proxied(origin: str) -> str:
    """Why requests would send a request to ORIGIN (`scheme://host`) through a proxy (the variable
    that says so), or "" when it goes straight there: a replay asks only where the push went."""
    scheme = origin.partition("://")[0]
    for name, value in os.environ.items():
        if value and name.lower() in _PROXY_ENV.get(scheme, ()):
            return f"{name} is set"
    return ""


def _ca_bundle() -> str:
    """The CA bundle requests verifies a registry's certificate with: REQUESTS_CA_BUNDLE, else
    CURL_CA_BUNDLE, else certifi's (requests.Session.merge_environment_settings)."""
    chosen = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if chosen:
        return chosen
    import certifi

    return str(certifi.where())


def registry_still_has(record: PushRecord, insecure: bool, timeout: float = 30.0) -> str:
    """Ask RECORD's registry, as the full push would (HEAD, the same Accept and User-Agent, no
    credentials), whether it holds the top by digest and whether the tag names it: "" when both,
    else why not (any answer but the expected ones, or no answer). INSECURE: --insecure (TLS not
    verified); otherwise TLS is verified against the bundle requests would use (_ca_bundle).

    Distribution spec "Checking if content exists in the registry"; one connection, kept alive.
    """
    import http.client

    from xarch.registry.mediatypes import MANIFEST_ACCEPT

    scheme, _, host = record.origin.partition("://")
    connection: http.client.HTTPConnection
    if scheme == "https":
        import ssl

        if insecure:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            bundle = _ca_bundle()  # a folder of hashed certificates, as requests allows, or a file
            if os.path.isdir(bundle):
                context = ssl.create_default_context(capath=bundle)
            else:
                context = ssl.create_default_context(cafile=bundle)
        connection = http.client.HTTPSConnection(host, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(host, timeout=timeout)
    headers = {"Accept": MANIFEST_ACCEPT, "User-Agent": "xarch"}
    try:
        for reference, names in ((record.digest, None), (record.tag, record.digest)):
            connection.request("HEAD", f"/v2/{record.repository}/manifests/{reference}", headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                return f"HEAD manifest {reference}: HTTP {response.status}"
            if names is not None and response.getheader("Docker-Content-Digest") != names:
                return f"the tag {record.tag} names another manifest, or the registry did not say which"
    except (OSError, http.client.HTTPException) as error:
        return f"{record.origin}: {type(error).__name__}: {error}"
    finally:
        connection.close()
    return ""
