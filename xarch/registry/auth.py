"""Credentials and the registry auth handshake (Basic, and the Bearer token flow).

Credentials come from, in order: what the user typed (`--username` + `--password-stdin`),
then ~/.docker/config.json through the docker SDK's `docker.auth` (it reads `auths`,
`credHelpers` and `credsStore` and runs the helper programs without a daemon).

The token flow itself (RFC 6750 challenge -> token endpoint) is written here: the docker SDK
leaves it to dockerd, and it is a handful of lines on the same requests.Session.
"""

from __future__ import annotations

import base64
import re
import threading
import urllib.parse
import warnings
from dataclasses import dataclass, field

import requests

from xarch.registry.dockerconfig import find_config_file
from xarch.registry.errors import AuthError, RegistryError, RegistryUsageError
from xarch.registry.reference import DOCKER_HUB


@dataclass(frozen=True)
class Credentials:
    """A user name and a secret. The secret never appears in repr() or in any message."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # An identity (refresh) token stored by `docker login` for OAuth registries.
    identity_token: str | None = field(default=None, repr=False)

    @property
    def present(self) -> bool:
        return bool(self.password or self.identity_token)

    def basic_header(self) -> str:
        """The `Authorization: Basic base64(user:password)` value (RFC 7617); empty parts stay empty."""
        raw = f"{self.username or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode()


ANONYMOUS = Credentials()


def docker_config_credentials(host: str, config_path: str | None = None) -> Credentials:
    """Credentials for HOST from the Docker config file (and its credential helpers), or ANONYMOUS.

    AuthError (exit 4) when its credential helper fails; RegistryUsageError (exit 2) when the
    config's `auth` for HOST is not base64 of USER:PASSWORD.
    """
    found = find_config_file(config_path)
    if found is None:
        # No config: the SDK would read an empty one and find nothing. Not importing it keeps ~0.1 s
        # of start-up off every push (tests/unit/test_accounts_and_auth.py compares the search).
        return ANONYMOUS
    _check_config_file(found)
    import docker.auth
    import docker.errors

    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            config = docker.auth.load_config(config_path=config_path)
            # The SDK keys Docker Hub by its legacy index URL; a reference says docker.io.
            entry = config.resolve_authconfig(None if host == DOCKER_HUB else host)
        except docker.errors.DockerException as exc:
            # A broken credential helper: say which host, not what the helper printed (it may echo
            # secrets); the SDK's own warning names a helper that is not installed, and nothing else.
            missing = [str(w.message) for w in warned if "not installed" in str(w.message)]
            reason = missing[0] if missing else type(exc).__name__
            raise AuthError(f"cannot read credentials for {host} from the Docker config: {reason}") from None
        except ValueError:  # binascii.Error included: an `auth` that is not base64 of user:password
            raise RegistryUsageError(f"the Docker config's `auth` entry for {host} is not base64 of "
                                     "USER:PASSWORD; run `docker login` again") from None
    if not entry:
        return ANONYMOUS
    lowered = {key.lower(): value for key, value in entry.items()}
    return Credentials(
        username=lowered.get("username") or None,
        password=lowered.get("password") or None,
        identity_token=lowered.get("identitytoken") or None,
    )


def _check_config_file(found: str) -> None:
    """The docker SDK reads a Docker config that is a FIFO, a folder or broken JSON as "no config",
    so a command would quietly run without the credentials the user logged in with: such a file
    (FOUND, see find_config_file) is one line naming it (RegistryUsageError, exit 2) instead.
    Bounded read: 4 MiB."""
    import json

    from xarch.smallfile import SmallFileError, read_small

    try:
        json.loads(read_small(found, 4 << 20))
    except SmallFileError as error:
        raise RegistryUsageError(f"Docker config {found}: {error}") from None
    except ValueError:
        raise RegistryUsageError(f"Docker config {found}: not JSON; fix it or run `docker login` again") \
            from None


_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…",scope="…"` -> ("bearer", {realm, service, scope})."""
    scheme, _, params = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_RE.findall(params))


class Authenticator:
    """Holds the Authorization header for one registry host and renews it on a 401 challenge.

    Bearer tokens are asked for the union of every scope seen so far, so one token covers
    pushing to the target repository and pulling from a mount source.
    """

    def __init__(self, host: str, credentials: Credentials, session: requests.Session):
        self.host = host
        self.credentials = credentials
        self.session = session
        self.header: str | None = None
        self.scopes: set[str] = set()
        # Parallel uploads may meet the same challenge at once: one token fetch at a time.
        self._lock = threading.Lock()

    def add_scope(self, scope: str) -> None:
        """Ask for SCOPE (`repository:<name>:pull[,push]`, distribution token spec) in the next token
        request; thread-safe.
        """
        with self._lock:
            self.scopes.add(scope)

    def answer(self, response: requests.Response) -> None:
        """Compute a new Authorization header from the 401 RESPONSE; raise AuthError when impossible."""
        with self._lock:
            self._answer(response)

    def _answer(self, response: requests.Response) -> None:
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not self.credentials.present:
                raise AuthError(f"{self.host} requires a login: run `docker login {self.host}` or pass "
                                "--username and --password-stdin")
            self.header = self.credentials.basic_header()
        elif scheme == "bearer":
            if "scope" in params:
                self.scopes.update(params["scope"].split(" "))
            self.header = "Bearer " + self._fetch_token(params, response.url)
        else:
            raise AuthError(f"{self.host} answered 401 with an unsupported challenge {scheme or '(none)'!r}")

    def _fetch_token(self, params: dict[str, str], challenged_url: str) -> str:
        realm = params.get("realm")
        if not realm:
            raise AuthError(f"{self.host} sent a Bearer challenge without a realm")
        # The registry names the realm: credentials it asks for over HTTPS never go out in clear text.
        if (self.credentials.present and urllib.parse.urlsplit(challenged_url).scheme == "https"
                and urllib.parse.urlsplit(realm).scheme != "https"):
            raise AuthError(f"{self.host} (HTTPS) names a token service that is not HTTPS ({realm!r}); "
                            "credentials are not sent to it")
        query: list[tuple[str, str]] = [("scope", scope) for scope in sorted(self.scopes)]
        if params.get("service"):
            query.insert(0, ("service", params["service"]))
        try:
            if self.credentials.identity_token:
                # OAuth2 refresh-token grant, as `docker login` stored it.
                form = dict(query)
                form.update(grant_type="refresh_token", refresh_token=self.credentials.identity_token,
                            client_id="xarch")
                reply = self.session.post(realm, data=form, timeout=60, verify=self.session.verify)
            else:
                # As bytes: requests encodes str parts as Latin-1, which a password with `€` breaks;
                # UTF-8 as in basic_header (RFC 7617 charset=UTF-8).
                user, secret = self.credentials.username or "", self.credentials.password or ""
                auth = requests.auth.HTTPBasicAuth(user.encode(), secret.encode()) \
                    if self.credentials.present else None
                reply = self.session.get(realm, params=query, auth=auth, timeout=60,
                                         verify=self.session.verify)
        except requests.RequestException as exc:
            reason = type(exc).__name__
            raise RegistryError(f"cannot reach the token service of {self.host}: {reason}") from None
        if reply.status_code in (401, 403):
            raise AuthError(self.rejected_message())
        if reply.status_code != 200:
            raise RegistryError(f"token service of {self.host} answered HTTP {reply.status_code}")
        try:  # the token service is the registry's choice, and hostile input like any answer
            body = reply.json()
        except ValueError:
            body = None
        token = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
        if not token or not isinstance(token, str):
            raise RegistryError(f"token service of {self.host} answered without a token")
        return str(token)

    def rejected_message(self) -> str:
        """The one line for a 401 after authenticating: whose credentials failed, or how to log in."""
        if self.credentials.present:
            who = f"user {self.credentials.username!r}" if self.credentials.username else "the stored token"
            return f"{self.host} rejected the credentials of {who} (wrong user name or password?)"
        return (f"{self.host} requires a login: run `docker login {self.host}` or pass "
                "--username and --password-stdin")
