"""The OCI distribution HTTP API on one requests.Session: blobs, uploads, mounts, manifests.

Written on requests rather than a library: oras-py (the maintained Python client) re-encodes
manifests from a dict (so their bytes and digests change), sends only the image-manifest
media type, has no cross-repository mount, and neither retries nor resumes an interrupted
chunked upload. docker's SDK leaves registry traffic to dockerd. What is here follows the
distribution spec: HEAD to skip, POST+PUT monolithic and POST+PATCH…+PUT chunked uploads,
`?mount=&from=` mounts, manifests PUT as exact bytes.

Credentials go only to the registry's own origin (scheme, host, port) and to the token realm
it names (xarch.registry.auth): an upload or blob URL on another origin, as registries backed
by object stores hand out, gets no Authorization header, whether xarch follows the Location
itself or requests follows a redirect (OriginSession below).

Retries: 5xx answers and dropped connections are retried with exponential backoff. A 429 or
5xx with `Retry-After` (seconds or an HTTP date, RFC 9110 §10.2.3) is waited for as asked, saying
so on stderr, within a budget per request (Settings.max_wait, XARCH_REGISTRY_MAX_WAIT, default
60 s); an answer that asks for more ends in RegistryUnavailable (exit 4) naming registry and status. A chunked
upload that breaks asks the upload URL how far it got (GET -> Range) and resumes from there;
if the registry forgot the upload, that blob alone starts again.
"""

from __future__ import annotations

import email.utils
import io
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import urllib3

from xarch.errors import InputError
from xarch.oci.filerange import FileRange
from xarch.oci.verified import BlobCheck, VerifiedStream
from xarch.registry.auth import ANONYMOUS, Authenticator, Credentials
from xarch.registry.errors import AuthError, CorruptAnswer, RegistryError, RegistryUnavailable
from xarch.registry.mediatypes import MANIFEST_ACCEPT, sha256_digest
from xarch.registry.progress import BlobProgress, QuietProgress
from xarch.registry.result import TransferStats
from xarch.registry.uploads import UploadJournal
from xarch.visible import visible
from xarch.websession import without_netrc

# 429: a rate limit (Docker Hub) is worth a few patient retries too.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Connection-level failures worth another try (SSLError is a ConnectionError but is not retried).
_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
PLAIN_HTTP_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, lowercase host, port) of URL, the port made explicit (RFC 6454's origin)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def origin_text(url: str) -> str:
    """`scheme://host:port` of URL, the port explicit: the origin as one string for messages and keys."""
    scheme, host, port = origin(url)
    return f"{scheme}://{host}:{port}"


class OriginSession(requests.Session):
    """A requests.Session whose redirects keep Authorization only within the same origin.

    requests' own rule keeps it across a change of port between 80 and 443 and from http to
    https on one host; credentials here follow the origin rule exactly (RFC 6454).
    """

    def should_strip_auth(self, old_url: str, new_url: str) -> bool:
        """True when a redirect from OLD_URL to NEW_URL leaves the origin (scheme, host, port)."""
        return origin(old_url) != origin(new_url)


class _Transient(Exception):
    """A request failed in a way another attempt may fix (dropped connection, 429 or 5xx)."""

    def __init__(self, message: str, status: int | None = None, reason: str = "",
                 retry_after: float | None = None):
        super().__init__(message)
        self.status, self.reason, self.retry_after = status, reason, retry_after


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header value asks to wait: delay-seconds or an HTTP date (RFC 9110
    §10.2.3); a date in the past is 0; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # RFC 9110 dates are GMT; one without a zone is not one of them
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _max_wait_from_env() -> float:
    try:
        return max(0.0, float(os.environ.get("XARCH_REGISTRY_MAX_WAIT", "60")))
    except ValueError:
        return 60.0


@dataclass
class Settings:
    """How to talk to registries; one value per command, shared by every client it makes.

    - insecure: plain HTTP and unverified TLS (localhost gets plain HTTP without it).
    - ca_cert: path of a PEM bundle trusted for the registry's certificate.
    - credentials, credentials_host: credentials typed by the user (`-u`, `--password-stdin`) for
      the registry host they were given for (host[:port] as in references); any other host gets the
      Docker config's, so typed credentials never travel to a second registry.
    - retries (count), backoff and max_backoff (seconds): retry budget for 5xx and dropped connections.
    - chunk_size (bytes): the size of one PATCH of a chunked upload.
    - timeout (seconds): connect and read timeout of one request.
    - jobs (count): blobs uploaded at once.
    - max_wait (seconds): how long one request may wait as Retry-After asks.
    """

    insecure: bool = False
    ca_cert: str | None = None
    credentials: Credentials | None = None
    credentials_host: str | None = None
    retries: int = 6
    backoff: float = 0.5
    max_backoff: float = 8.0
    chunk_size: int = DEFAULT_CHUNK_SIZE
    timeout: float = 120.0
    jobs: int = 3  # blobs uploaded at once (docker pushes 5; registries behind small links prefer fewer)
    # Seconds one request may spend waiting as Retry-After asks (XARCH_REGISTRY_MAX_WAIT).
    max_wait: float = field(default_factory=_max_wait_from_env)


def _registry_error_text(response: requests.Response) -> str:
    """`CODE: message` from the registry's JSON error body, else the HTTP reason."""
    try:
        body = response.json()
    except ValueError:
        body = None
    # The body is the registry's: a list, a string or `{"errors": 3}` is no reason, not a crash.
    errors = body.get("errors") if isinstance(body, dict) else None
    parts = [f"{e.get('code', '?')}: {e.get('message', '')}".strip()
             for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
    if parts:
        return visible("; ".join(str(part) for part in parts))
    return response.reason or "no reason given"


def _changed(path: Path | FileRange | bytes, length: int, size: int) -> InputError:
    """The error for a blob source that holds LENGTH bytes where the blob has SIZE: a file cut short
    (or grown) since the push checked it. Its fault, not the registry's (exit 2)."""
    name = path.path if isinstance(path, FileRange) else "a blob" if isinstance(path, bytes) else path
    return InputError(f"{name}: holds {length} bytes where the blob has {size} (it changed while it "
                      "was pushed)")


def _with_query(url: str, **params: str) -> str:
    """Append PARAMS to URL, which may already carry the registry's own upload state query."""
    query = "&".join(f"{key}={quote(value, safe=':')}" for key, value in params.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


class RegistryClient:
    """One registry host. Every method names the repository it acts on."""

    def __init__(
        self,
        host: str,
        credentials: Credentials = ANONYMOUS,
        settings: Settings | None = None,
        stats: TransferStats | None = None,
        on_chunk: Callable[[str, int], None] | None = None,
        journal: UploadJournal | None = None,
    ):
        self.host = host
        # Unfinished chunked uploads, remembered across runs (None: resume only within this run).
        self.journal = journal
        self.settings = settings or Settings()
        self.stats = stats or TransferStats()
        # Called after each chunk the registry accepted: (digest, offset). Tests cut uploads here.
        self.on_chunk = on_chunk
        self.session = without_netrc(OriginSession())
        self.session.headers["User-Agent"] = "xarch"
        if self.settings.insecure:
            self.session.verify = False
            # The user asked for it (--insecure); one warning per request would bury the progress lines.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        elif self.settings.ca_cert:
            self.session.verify = self.settings.ca_cert
        # Otherwise verify=True, and requests honours REQUESTS_CA_BUNDLE from the environment. Every call
        # passes verify= explicitly: requests lets that variable override a session's own setting.
        self.auth = Authenticator(host, credentials, self.session)
        self._base: str | None = None

    # ---- connection -------------------------------------------------------------------------

    @property
    def plain_http_allowed(self) -> bool:
        if self.host.startswith("["):
            hostname = self.host[1:].split("]")[0]
        else:
            hostname = self.host.rsplit(":", 1)[0]
        return self.settings.insecure or hostname in PLAIN_HTTP_HOSTS

    def base_url(self) -> str:
        """https://HOST, or http://HOST when HTTPS fails and plain HTTP is allowed for this host."""
        if self._base is None:
            self._base = self._probe()
        return self._base

    def _probe(self) -> str:
        https = f"https://{self.host}"
        waited, attempt = 0.0, 0
        while attempt <= self.settings.retries:
            try:
                self.session.get(f"{https}/v2/", timeout=self.settings.timeout, verify=self.session.verify)
                return https
            except requests.exceptions.SSLError as exc:
                error: Exception = exc
            except _TRANSIENT as exc:
                error = exc
            # A 5xx or a dropped connection on plain HTTP is a registry (or its proxy) having a bad
            # moment: try both again after a pause rather than blame TLS.
            plain_may_recover = False
            if self.plain_http_allowed:
                try:
                    reply = self.session.get(f"http://{self.host}/v2/", timeout=self.settings.timeout)
                    if reply.status_code in RETRY_STATUSES and "Retry-After" in reply.headers:
                        waited = self._pause(_transient_of(reply, "GET /v2/"), "GET /v2/", waited)
                        continue
                    if reply.status_code in (200, 401) or "Docker-Distribution-Api-Version" in reply.headers:
                        return f"http://{self.host}"
                    plain_may_recover = reply.status_code in RETRY_STATUSES
                except _TRANSIENT:
                    plain_may_recover = True
            if isinstance(error, requests.exceptions.SSLError) and not plain_may_recover:
                # With --ca-cert given, "pass --ca-cert" would send the user round in a circle.
                fix = (f"--ca-cert {self.settings.ca_cert} does not hold the CA that signed its certificate"
                       if self.settings.ca_cert else
                       "pass --ca-cert FILE or set REQUESTS_CA_BUNDLE for a private CA")
                raise RegistryError(
                    f"TLS to {self.host} failed ({_ssl_reason(error)}): {fix}, or --insecure to skip "
                    "verification") from None
            if attempt < self.settings.retries:
                self._sleep(attempt)
            attempt += 1
        raise RegistryUnavailable(f"cannot connect to registry {self.host}")

    def _sleep(self, attempt: int) -> None:
        self.stats.add(retries=1)
        time.sleep(min(self.settings.backoff * (2**attempt), self.settings.max_backoff))

    def _pause(self, failure: _Transient, what: str, waited: float) -> float:
        """Wait as FAILURE's Retry-After asks, saying so on stderr; the new total WAITED.

        Raises RegistryUnavailable when that would take the request past settings.max_wait.
        """
        assert failure.retry_after is not None
        # Retry-After: 0 (or a past date) still pauses a little, so the budget always runs out.
        delay = max(failure.retry_after, self.settings.backoff)
        answer = f"HTTP {failure.status} {failure.reason}".rstrip()
        if waited + delay > self.settings.max_wait:
            raise RegistryUnavailable(
                f"{self.host}: {what}: {answer}, and it asks to wait {failure.retry_after:.0f} s more "
                f"(Retry-After) after {waited:.0f} s; xarch waits at most {self.settings.max_wait:.0f} s "
                "per request (XARCH_REGISTRY_MAX_WAIT)")
        print(f"xarch: {self.host} answered {answer} to {what}; waiting {delay:.0f} s as its Retry-After "
              "asks", file=sys.stderr, flush=True)
        self.stats.add(retries=1)
        time.sleep(delay)
        return waited + delay

    def url(self, path_or_url: str) -> str:
        """An absolute URL: PATH_OR_URL as is when absolute (a Location header), else joined to base_url()."""
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return requests.compat.urljoin(self.base_url() + "/", path_or_url.lstrip("/"))

    # ---- requests ---------------------------------------------------------------------------

    def _send_once(self, method: str, url: str, headers: dict[str, str] | None = None,
                   body: bytes | None = None, stream: bool = False) -> requests.Response:
        """One request, answering one auth challenge. Raises _Transient for what a retry may fix.

        The Authorization header goes only to the registry's own origin (see the module text).
        """
        home = origin(url) == origin(self.base_url())
        for answered_challenge in (False, True):
            all_headers = dict(headers or {})
            if self.auth.header and home:
                all_headers["Authorization"] = self.auth.header
            try:
                response = self.session.request(method, url, headers=all_headers, data=body,
                                                timeout=self.settings.timeout, stream=stream,
                                                allow_redirects=True, verify=self.session.verify)
            except requests.exceptions.SSLError as exc:
                raise RegistryError(f"TLS to {self.host} failed ({_ssl_reason(exc)})") from None
            except _TRANSIENT as exc:
                raise _Transient(f"{method} {_no_query(url)}: {type(exc).__name__}") from exc
            if response.status_code == 401:
                if not home or origin(response.url) != origin(self.base_url()):
                    asker = origin_text(response.url)
                    raise AuthError(f"{self.host}: {method} {_no_query(url)}: {asker} asked for credentials; "
                                    f"xarch sends them only to {self.host} and its token service")
                if answered_challenge:
                    raise AuthError(self.auth.rejected_message())
                self.auth.answer(response)
                continue
            if response.status_code in RETRY_STATUSES:
                raise _transient_of(response, f"{method} {_no_query(url)}")
            return response
        raise AssertionError("unreachable")

    def request(self, method: str, path_or_url: str, headers: dict[str, str] | None = None,
                body: bytes | None = None, stream: bool = False, what: str = "") -> requests.Response:
        """A request retried with backoff on 429, 5xx and dropped connections; Retry-After is honoured
        (waits do not use up attempts, only settings.max_wait). Raises RegistryUnavailable (exit 4)."""
        waited, attempt = 0.0, 0
        while True:
            try:
                return self._send_once(method, self.url(path_or_url), headers, body, stream)
            except _Transient as exc:
                last = exc
                if exc.retry_after is not None:
                    waited = self._pause(exc, what or method, waited)
                    continue
                if attempt >= self.settings.retries:
                    break
                self._sleep(attempt)
                attempt += 1
        raise RegistryUnavailable(f"{self.host}: {what or method} failed after {self.settings.retries + 1} "
                                  f"attempts ({last})")

    def _fail(self, response: requests.Response, what: str) -> RegistryError:
        if response.status_code == 403:
            return AuthError(f"{self.host}: {what}: access denied ({_registry_error_text(response)})")
        reason = _registry_error_text(response)
        error = RegistryError(f"{self.host}: {what}: HTTP {response.status_code} {reason}")
        error.status = response.status_code
        return error

    def _scope(self, repository: str, push: bool) -> None:
        self.auth.add_scope(f"repository:{repository}:{'pull,push' if push else 'pull'}")

    # ---- blobs ------------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: str) -> bool:
        """True when REPOSITORY holds blob DIGEST (HEAD /v2/<name>/blobs/<digest>, distribution spec
        "Checking if content exists"); 404 is False. Other answers raise RegistryError or AuthError
        (exit 4) after the retries.
        """
        self._scope(repository, push=False)
        what = f"HEAD blob {repository}@{digest}"
        response = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", what=what)
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._fail(response, what)

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> tuple[bool, str | None]:
        """Mount DIGEST from FROM_REPOSITORY: (True, None) when mounted, else (False, the upload URL the
        registry opened instead, if any).

        POST /v2/<name>/blobs/uploads/?mount=&from= (distribution spec "Mounting a blob from another
        repository"); no pull access to the source is a plain False. Other refusals raise RegistryError
        or AuthError (exit 4).
        """
        self._scope(repository, push=True)
        self._scope(from_repository, push=False)
        what = f"mount {digest} from {from_repository} into {repository}"
        try:
            response = self.request("POST", _with_query(f"/v2/{repository}/blobs/uploads/", mount=digest,
                                                        **{"from": from_repository}), what=what)
        except AuthError:
            # No pull access to the source (a token registry answers 401 for the whole request):
            # not a reason to fail the push; the upload that follows will say if the login is wrong.
            return False, None
        if response.status_code == 201:
            return True, None
        if response.status_code == 202:
            return False, self.url(response.headers["Location"])
        raise self._fail(response, what)

    def cancel_upload(self, upload_url: str) -> None:
        """Drop an upload session we will not use (best effort: the registry expires it anyway)."""
        try:
            self._send_once("DELETE", upload_url)
        except (_Transient, RegistryError):
            pass

    def _start_upload(self, repository: str) -> str:
        self._scope(repository, push=True)
        what = f"start upload to {repository}"
        response = self.request("POST", f"/v2/{repository}/blobs/uploads/", headers={"Content-Length": "0"},
                                what=what)
        if response.status_code != 202 or "Location" not in response.headers:
            raise self._fail(response, what)
        return self.url(response.headers["Location"])

    def upload_blob(self, repository: str, digest: str, path: Path | FileRange | bytes, size: int,
                    progress: BlobProgress | None = None, upload_url: str | None = None) -> None:
        """Upload the blob at PATH (a file, a range of one: xarch.oci.filerange, or the bytes
        themselves: a config built in memory): one PUT when it fits in a chunk, else PATCH chunks
        with resume. InputError (exit 2) when the file holds other than SIZE bytes by then."""
        progress = progress or QuietProgress()
        if size <= self.settings.chunk_size:
            self._upload_monolithic(repository, digest, path, size, progress, upload_url)
        else:
            self._upload_chunked(repository, digest, path, size, progress, upload_url)
        self.stats.add(blobs_sent=1)

    def _upload_monolithic(self, repository: str, digest: str, path: Path | FileRange | bytes, size: int,
                           progress: BlobProgress, upload_url: str | None) -> None:
        data = path if isinstance(path, bytes) else path.read_bytes()
        if len(data) != size:
            raise _changed(path, len(data), size)
        what = f"upload {digest} to {repository}"
        for restart in range(2):
            location = upload_url if (upload_url and restart == 0) else self._start_upload(repository)
            response = self.request(
                "PUT", _with_query(location, digest=digest),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                body=data, what=what,
            )
            if response.status_code == 201:
                self.stats.add(bytes_sent=size)
                progress.advance(digest, size)
                return
            if response.status_code != 404:  # 404: the registry lost the upload session; open a new one
                break
            self.stats.add(restarted_uploads=1)
        raise self._fail(response, what)

    def _upload_chunked(self, repository: str, digest: str, path: Path | FileRange | bytes, size: int,
                        progress: BlobProgress, upload_url: str | None) -> None:
        what = f"upload {digest} to {repository}"
        offset = 0
        saved = None if upload_url or not self.journal else self.journal.get(self.host, repository, digest)
        if saved:
            # An earlier run was cut off during this blob: continue where the registry says it stopped.
            location, offset = self._resume_point(repository, saved)
            self.stats.add(bytes_skipped=offset)
            progress.advance(digest, offset)
        else:
            location = upload_url or self._start_upload(repository)
        failures, waited = 0, 0.0
        with io.BytesIO(path) if isinstance(path, bytes) else path.open("rb") as blob:
            while offset < size:
                blob.seek(offset)
                chunk = blob.read(min(self.settings.chunk_size, size - offset))
                if not chunk:  # the file ends before the blob does: it changed since it was checked
                    raise _changed(path, offset, size)
                headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(chunk)),
                           "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
                try:
                    response = self._send_once("PATCH", location, headers, chunk)
                except _Transient as exc:
                    response = None
                    if exc.retry_after is not None:
                        waited = self._pause(exc, what, waited)
                        continue
                if response is not None and response.status_code == 202:
                    offset += len(chunk)
                    self.stats.add(bytes_sent=len(chunk))
                    progress.advance(digest, len(chunk))
                    location = self.url(response.headers.get("Location", location))
                    failures = 0
                    if self.journal:
                        self.journal.put(self.host, repository, digest, location)
                    if self.on_chunk:
                        self.on_chunk(digest, offset)
                    continue
                if response is not None and response.status_code not in (404, 416):
                    raise self._fail(response, what)
                # Broken connection, a lost session (404) or a range the registry disputes (416):
                # ask where the upload stands, after a backoff so a restarting registry can come back.
                if failures >= self.settings.retries:
                    raise RegistryError(f"{self.host}: {what} failed after {failures} attempts to resume")
                self._sleep(failures)
                failures += 1
                location, offset = self._resume_point(repository, location)
        response = self.request("PUT", _with_query(location, digest=digest), headers={"Content-Length": "0"},
                                what=what)
        if response.status_code == 404:
            # The registry lost the finished upload before it was committed: send this blob again.
            self.stats.add(restarted_uploads=1)
            if self.journal:
                self.journal.drop(self.host, repository, digest)
            self._upload_chunked(repository, digest, path, size, progress, None)
            return
        if response.status_code != 201:
            raise self._fail(response, what)
        if self.journal:
            self.journal.drop(self.host, repository, digest)

    def _resume_point(self, repository: str, location: str) -> tuple[str, int]:
        """(upload URL, next offset) from the upload's status, or a fresh upload at 0 if it is gone."""
        response = self.request("GET", location, what=f"status of upload to {repository}")
        if response.status_code == 204:
            received = response.headers.get("Range", "")
            start, _, end = received.partition("-")
            # "0-0" means nothing or one byte received: the API cannot tell, so start over.
            if start == "0" and end.isascii() and end.isdigit() and int(end) > 0:
                self.stats.add(resumed_uploads=1)
                return self.url(response.headers.get("Location", location)), int(end) + 1
        self.stats.add(restarted_uploads=1)
        return self._start_upload(repository), 0

    def get_blob(self, repository: str, digest: str, size: int | None = None) -> bytes:
        """A small blob (a config), verified against DIGEST (and SIZE when given); CorruptAnswer if not."""
        self._scope(repository, push=False)
        what = f"GET blob {repository}@{digest}"
        response = self.request("GET", f"/v2/{repository}/blobs/{digest}", stream=True, what=what)
        try:
            if response.status_code != 200:
                raise self._fail(response, what)
            # Read no further than the descriptor's size (else MAX_SMALL_BLOB_BYTES): an endless answer
            # is a wrong blob, not a MemoryError.
            limit = min(size, MAX_SMALL_BLOB_BYTES) if size is not None else MAX_SMALL_BLOB_BYTES
            data = bounded_body(response, limit,
                                f"{self.host}: {what}: the answer is longer than {limit} bytes")
        finally:
            response.close()
        check = BlobCheck(digest, size, f"{self.host}: {what}", CorruptAnswer)
        check.update(data)
        check.finish()
        return data

    def open_blob(self, repository: str, digest: str, size: int | None = None) -> VerifiedStream:
        """A stream of blob DIGEST as the registry answers it, checked as it is read (never more than
        SIZE bytes; the sha256 at EOF): CorruptAnswer (exit 4) when it differs or the connection drops.
        Opened on demand, for xarch.registry.source (the read model's registry source)."""
        self._scope(repository, push=False)
        what = f"GET blob {repository}@{digest}"
        response = self.request("GET", f"/v2/{repository}/blobs/{digest}", stream=True, what=what)
        if response.status_code != 200:
            response.close()
            raise self._fail(response, what)
        body = io.BufferedReader(_ResponseReader(response))
        return VerifiedStream(body, digest, size, f"{self.host}: {what}", CorruptAnswer)

    def download_blob(self, repository: str, digest: str, destination: Path, size: int | None = None) -> None:
        """Stream a blob to DESTINATION, verified against DIGEST (and SIZE when given: a longer answer
        is cut off there); a partial or wrong download never lands there (CorruptAnswer, exit 4)."""
        self._scope(repository, push=False)
        what = f"GET blob {repository}@{digest}"
        partial = destination.with_name(destination.name + ".partial")
        for attempt in range(self.settings.retries + 1):
            response = self.request("GET", f"/v2/{repository}/blobs/{digest}", stream=True, what=what)
            if response.status_code != 200:
                raise self._fail(response, what)
            check = BlobCheck(digest, size, f"{self.host}: {what}", CorruptAnswer)
            try:
                with partial.open("wb") as out:
                    for piece in response.iter_content(1 << 20):
                        check.update(piece)
                        out.write(piece)
            except CorruptAnswer:
                partial.unlink(missing_ok=True)
                response.close()
                raise
            except _TRANSIENT:
                if attempt < self.settings.retries:
                    self._sleep(attempt)
                    continue
                partial.unlink(missing_ok=True)
                raise RegistryError(f"{self.host}: {what}: connection dropped") from None
            try:
                check.finish()
            except CorruptAnswer:
                partial.unlink(missing_ok=True)
                raise
            os.replace(partial, destination)
            return

    # ---- manifests --------------------------------------------------------------------------

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """PUT DATA exactly as given under REFERENCE (tag or digest); returns its digest.

        PUT /v2/<name>/manifests/<reference> (distribution spec "Pushing manifests"). RegistryError or
        AuthError (exit 4) when refused, or when the registry reports another Docker-Content-Digest.
        """
        self._scope(repository, push=True)
        digest = sha256_digest(data)
        what = f"PUT manifest {repository}:{reference}"
        response = self.request("PUT", f"/v2/{repository}/manifests/{reference}",
                                headers={"Content-Type": media_type}, body=data, what=what)
        if response.status_code not in (200, 201):
            raise self._fail(response, what)
        answered = response.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise RegistryError(f"{self.host}: {what}: registry stored digest {answered}, expected {digest}")
        return digest

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest REFERENCE (tag or digest) names in REPOSITORY, from a HEAD (no body moves); None
        when the registry has no such manifest. A digest reference answered 200 names exactly those
        bytes: the registry checked them against the digest when they were PUT."""
        self._scope(repository, push=False)
        what = f"HEAD manifest {repository}{'@' if reference.startswith('sha256:') else ':'}{reference}"
        # Every manifest type accepted: a registry that thinks the client cannot read an index
        # answers for one platform's manifest instead (distribution does this for a tag).
        response = self.request("HEAD", f"/v2/{repository}/manifests/{reference}",
                                headers={"Accept": MANIFEST_ACCEPT}, what=what)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(response, what)
        if reference.startswith("sha256:"):
            return reference
        answered = response.headers.get("Docker-Content-Digest")
        return answered if answered else self.get_manifest(repository, reference)[2]

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """(exact bytes, media type, digest) of a manifest or index; verified when REFERENCE is a digest.

        GET /v2/<name>/manifests/<reference> (distribution spec "Pulling manifests"). RegistryError
        (exit 4) when not found or refused, CorruptAnswer (exit 4) when the bytes do not hash to it.
        """
        self._scope(repository, push=False)
        what = f"GET manifest {repository}:{reference}" if not reference.startswith("sha256:") \
            else f"GET manifest {repository}@{reference}"
        response = self.request("GET", f"/v2/{repository}/manifests/{reference}",
                                headers={"Accept": MANIFEST_ACCEPT}, stream=True, what=what)
        try:
            if response.status_code == 404:
                raise RegistryError(f"{self.host}: {what}: not found")
            if response.status_code != 200:
                raise self._fail(response, what)
            # Streamed and bounded: a registry that answers with an endless body would otherwise be
            # read until memory runs out (MemoryError, exit 70).
            data = bounded_body(response, MAX_MANIFEST_BYTES, f"{self.host}: {what}: the manifest is larger "
                                f"than {MAX_MANIFEST_BYTES} bytes, the registry's own limit")
        finally:
            response.close()
        digest = sha256_digest(data)
        if reference.startswith("sha256:") and digest != reference:
            raise CorruptAnswer(f"{self.host}: {what}: content does not match the digest "
                                f"(it hashes to {digest})")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return data, media_type, digest

    def close(self) -> None:
        """Close the HTTP session and its pooled connections."""
        self.session.close()


# distribution's registry refuses manifests above 4 MiB (maxManifestBodySize); none can be larger.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# get_blob without a size (the few small blobs read whole: configs, SBOMs, signatures).
MAX_SMALL_BLOB_BYTES = 256 * 1024 * 1024


class _ResponseReader(io.RawIOBase):
    """The body of RESPONSE as a binary stream; a dropped connection is an OSError (VerifiedStream
    reports it as one line)."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self.response.raw.read(len(buffer), decode_content=True)
        except (urllib3.exceptions.HTTPError, requests.RequestException) as error:
            raise OSError(f"connection dropped: {error}") from None
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.response.close()
        super().close()


def bounded_body(response: requests.Response, limit: int, too_long: str) -> bytes:
    """The body of the streamed RESPONSE (`stream=True`), at most LIMIT bytes; CorruptAnswer (exit 4)
    with the message TOO_LONG when the registry sends more (an endless answer is then no MemoryError)."""
    body = bytearray()
    for piece in response.iter_content(1 << 16):
        body += piece
        if len(body) > limit:
            raise CorruptAnswer(too_long)
    return bytes(body)


def _transient_of(response: requests.Response, what: str) -> _Transient:
    return _Transient(f"{what}: HTTP {response.status_code}", response.status_code, response.reason or "",
                      retry_after_seconds(response.headers.get("Retry-After")))


def _no_query(url: str) -> str:
    """URL without its query: upload URLs carry long opaque state that only clutters a message."""
    return url.split("?", 1)[0]


def _ssl_reason(exc: Exception) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "certificate not trusted"
    if "WRONG_VERSION_NUMBER" in text:
        return "the server does not speak TLS"
    return "handshake failed"


def client_settings(insecure: bool = False, ca_cert: str | None = None, **overrides: Any) -> Settings:
    """A Settings with INSECURE and CA_CERT (path of a PEM bundle) and any other field set by keyword
    (OVERRIDES: retries, timeout in seconds, chunk_size in bytes...); a wrong name raises nothing here.
    """
    settings = Settings(insecure=insecure, ca_cert=ca_cert)
    for key, value in overrides.items():
        setattr(settings, key, value)
    return settings
