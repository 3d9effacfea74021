"""requests sessions that send only the credentials xarch was given.

requests reads ~/.netrc (or $NETRC) for every request that carries no auth of its own and sends
the login it finds for the host, or the file's `default` login for any host: over plain HTTP
too, to a registry or mirror nobody gave it to. xarch's credentials come from the command line,
the Docker config or the environment it documents, as docker's and crane's do; netrc is none of
those. Proxies and REQUESTS_CA_BUNDLE from the environment still apply (trust_env stays on).
"""

from __future__ import annotations

import requests
import requests.auth


class _NoNetrc(requests.auth.AuthBase):
    """A session-wide auth that adds nothing: with one set, requests never looks up netrc
    (requests.Session.prepare_request), and a request's own auth= still wins over it."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


def without_netrc(session: requests.Session) -> requests.Session:
    """SESSION, made to send no netrc login (see the module); returned for chaining."""
    session.auth = _NoNetrc()
    return session
