"""Push records: a finished `xarch push` remembered by what it read, and the questions that tell
whether pushing it again would change anything on the registry.

A re-push of an unchanged layout asks the registry two things (xarch.registry.push.push_source):
does it hold the top manifest by digest, and does the tag name it. Finding that out the full
way costs loading requests, pydantic and click, and reading and checking the layout: about
0.4 s, where skopeo takes 0.07 s. A push record (kept beside build records, xarch.records)
holds the inputs the push read (its Witness: the layout's index.json, manifests and configs),
the size of each layer file, where the Docker config is looked for, where its requests went and
what it printed. xarch.cli.pushreplay replays it when all of that is unchanged and the registry
answers as the record expects, over http.client (registry_still_has: the scheme the full push
would choose, /v2/, both questions); any other answer runs the full push.

Replayed only when nothing could differ from the full path's requests: no credentials were sent
(an anonymous registry; a challenge or a 401 means the full push), no proxy from the environment
for the registry's scheme, and no attachment was pushed. TLS is verified against the CA bundle
requests would use.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xarch.errors import XarchError
from xarch.oci.digest import hex_of
from xarch.records import FORMAT, RecordError, Witness, record_json

KIND = "push"
# The environment variables that make requests send a push's requests through a proxy, by the
# scheme of its record's origin (urllib.request.getproxies_environment, as requests reads them).
# The full push of a plain-HTTP record asks HTTPS first (through https_proxy): both count there.
_PROXY_ENV = {"http": ("http_proxy", "https_proxy", "all_proxy"), "https": ("https_proxy", "all_proxy")}


@dataclass(frozen=True)
class PushRecord:
    """A finished push: its inputs (Witness); ORIGIN (`http://host[:port]` or `https://…`, where
    its requests went); the repository and the TAG it wrote; the top's DIGEST and MEDIA_TYPE;
    the REFERENCE and MANIFESTS ({platform name: digest}) it printed; BLOBS, [digest, size] of every
    config and layer under the top, once each, in order (a re-push reports them as already there);
    CONFIG_PROBE, [path, whether it exists] of each place the Docker config is looked for
    (xarch.registry.dockerconfig: a config that appears changes who the push speaks as)."""

    witness: Witness
    origin: str
    repository: str
    tag: str
    digest: str
    media_type: str
    reference: str
    manifests: dict[str, str] = field(default_factory=dict)
    blobs: list[list[Any]] = field(default_factory=list)
    config_probe: list[list[Any]] = field(default_factory=list)

    def to_json(self) -> bytes:
        """The record as sorted, compact ASCII JSON, with its FORMAT and KIND."""
        return record_json({"format": FORMAT, "kind": KIND, **self.witness.fields(), "origin": self.origin,
                            "repository": self.repository, "tag": self.tag, "digest": self.digest,
                            "media_type": self.media_type, "reference": self.reference,
                            # pairs, in the push's order: sorted keys would reorder the lines printed
                            "manifests": [[name, digest] for name, digest in self.manifests.items()],
                            "blobs": self.blobs,
                            "config_probe": self.config_probe})

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
            pairs, blobs, probe = raw["manifests"], raw["blobs"], raw["config_probe"]
            if not (isinstance(pairs, list) and all(isinstance(p, list) and len(p) == 2
                                                    and isinstance(p[0], str) for p in pairs)):
                raise RecordError("malformed result")
            manifests = {str(name): digest for name, digest in pairs}
            if not (scheme in ("http", "https") and ref.repository == raw["repository"]
                    and raw["reference"].endswith("@" + raw["digest"])
                    and isinstance(raw["media_type"], str) and raw["media_type"].isascii()
                    and raw["media_type"].isprintable()
                    and isinstance(manifests, dict)
                    and all(isinstance(v, str) and hex_of(v) for v in manifests.values())
                    and isinstance(blobs, list)
                    and all(isinstance(b, list) and len(b) == 2 and hex_of(b[0]) and type(b[1]) is int
                            and b[1] >= 0 for b in blobs)
                    and isinstance(probe, list)
                    and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                            and type(p[1]) is bool for p in probe)):
                raise RecordError("malformed result")
            parse_reference(raw["reference"])  # what is printed is a reference, nothing else
            return cls(witness, raw["origin"], raw["repository"], raw["tag"], raw["digest"],
                       raw["media_type"], raw["reference"], manifests, blobs, probe)
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
    for path, witness in record.witness.files.items():
        # a layout's blob is named by its sha256: one that was not (a change during the push that
        # left its times alone, whose first bytes were not hashed, Recorder.defer_hashing) never is
        folder, name = os.path.split(path)
        if folder.endswith("/blobs/sha256") and name != witness[1]:
            return f"{path} does not hold the blob its name says"
    return ""


def config_probe() -> list[list[Any]]:
    """[path, whether it exists] of each place the Docker config is looked for, in order. An
    existence test raises no audit event: a config that was absent is not in a Witness."""
    from xarch.registry.dockerconfig import config_candidates

    return [[path, os.path.exists(path)] for path in config_candidates()]


def layout_blobs(layout: Path, paths: Iterable[str],
                 blobs: list[list[Any]]) -> tuple[set[str], dict[str, int]]:
    """(the digests of the layers that are no config, {digest: size} of every config and layer)
    that the manifests of the folder LAYOUT name, found among PATHS (files the push read): those
    under blobs/sha256/ that are not BLOBS (configs and layers) are its index and manifests, in
    either --format. RecordError when one of them is no JSON object."""
    folder = blob_folder(layout)
    named = {hex_of(str(digest)) for digest, _ in blobs}
    layers: set[str] = set()
    configs: set[str] = set()
    sizes: dict[str, int] = {}
    for path in paths:
        if not path.startswith(folder) or path[len(folder):] in named:
            continue
        try:
            document = json.loads(Path(path).read_bytes())
            if not isinstance(document, dict) or "config" not in document:
                continue  # an index
            for item in [document["config"], *document.get("layers", [])]:
                sizes[str(item["digest"])] = int(item["size"])
            layers.update(str(item["digest"]) for item in document.get("layers", []))
            configs.add(str(document["config"]["digest"]))
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
            raise RecordError(f"{path}: {error}") from None
    # A blob that is one manifest's config is read (and checked) by the push, whatever else names
    # it as a layer: it stays witnessed by its bytes.
    return layers - configs, sizes


def blob_folder(layout: Path) -> str:
    """`<LAYOUT>/blobs/sha256/`, absolute, as the Recorder names the files in it."""
    return os.path.join(os.path.abspath(layout), "blobs", "sha256") + "/"


def layer_files(layout: Path, paths: Iterable[str], blobs: list[list[Any]]) -> set[str]:
    """The layer files of the folder LAYOUT among PATHS: a push that sent a layer read it, but a
    re-push only checks its size (xarch.registry.layout_source), and so does a replay
    (blob_files_differ). Hashing them at each replay would cost more than the push saves."""
    layers, _ = layout_blobs(layout, paths, blobs)
    return {blob_folder(layout) + hex_of(digest) for digest in layers}


def blob_files_differ(layout: Path, record: PushRecord) -> str:
    """Why the folder LAYOUT's config and layer files are not what RECORD's push found, or "": its
    BLOBS must be exactly those its manifests name, each a regular file of its descriptor's size
    (all a re-push checks of a blob it does not send)."""
    try:
        _, sizes = layout_blobs(layout, record.witness.files, record.blobs)
        if sizes != {str(digest): size for digest, size in record.blobs}:
            return "its blobs are not those of its manifests"
        for digest, size in sizes.items():
            state = os.stat(layout / "blobs" / "sha256" / hex_of(digest))
            if not stat.S_ISREG(state.st_mode) or state.st_size != size:
                return f"blob {digest} is not a file of {size} bytes"
    except (OSError, ValueError, RecordError) as error:
        return f"{type(error).__name__}: {error}"
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
    """Ask RECORD's registry what the full push asks first (xarch.registry.client, _probe and
    manifest_digest), in the same way (the same Accept and User-Agent, no credentials): "" when
    it still speaks the recorded scheme, holds the top by digest and the tag names it; else why
    not (any other answer, or none). INSECURE: --insecure (TLS not verified); otherwise TLS is
    verified against the bundle requests would use (_ca_bundle).

    The full push tries HTTPS first and speaks plain HTTP only when that fails (and the host
    allows it): a record of a plain-HTTP push is replayed only when HTTPS still fails there, and
    `/v2/` still answers as a registry. Distribution spec "Checking if content exists".
    """
    import http.client
    import ssl

    from xarch.registry.mediatypes import MANIFEST_ACCEPT

    scheme, _, host = record.origin.partition("://")
    unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    if insecure or scheme == "http":
        # For the plain-HTTP record, whether the host speaks TLS at all: if it does, the full push
        # is left to choose (and verify); no CA bundle needs loading to find out.
        context = unverified
    else:
        bundle = _ca_bundle()  # a folder of hashed certificates, as requests allows, or a file
        if os.path.isdir(bundle):
            context = ssl.create_default_context(capath=bundle)
        else:
            context = ssl.create_default_context(cafile=bundle)
    headers = {"Accept": MANIFEST_ACCEPT, "User-Agent": "xarch"}
    https = http.client.HTTPSConnection(host, timeout=timeout, context=context)
    connection: http.client.HTTPConnection = https
    try:
        if scheme == "http":
            try:
                https.request("GET", "/v2/", headers={"User-Agent": "xarch"})
                https.getresponse().read()
                return f"{host} now answers HTTPS"  # the full push may go there instead
            except (OSError, http.client.HTTPException):
                pass  # as the full push: plain HTTP when HTTPS fails
            finally:
                https.close()
            connection = http.client.HTTPConnection(host, timeout=timeout)
            connection.request("GET", "/v2/", headers={"User-Agent": "xarch"})
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:  # 401: it asks for credentials now; else no registry
                return f"GET /v2/: HTTP {answer.status}"
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
