"""The store's HTTP session: kept alive and pooled, the environment read once.

The official client calls ``requests.request`` for every call: a new TCP connection (a TLS
handshake in production) and a fresh scan of the environment each time. ``session_api`` is the
same client sending through one shared ``requests.Session`` from ``keep_alive_session``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import requests
from requests.adapters import HTTPAdapter


def keep_alive_session(url: str, verify: bool | str, pool_size: int) -> requests.Session:
    """A session that keeps up to ``pool_size`` connections to ``url``'s host alive.

    ``pool_size`` should be the number of threads that call the store at once (the dispatch
    workers plus the poll): a smaller pool opens and drops connections under load.
    The environment is read once, here, as ``requests.request`` would on every call: the
    proxies for this URL (``HTTPS_PROXY``, ``NO_PROXY``...) and, when the certificate is checked
    against the system store, ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``. ``trust_env`` is then
    switched off so no call scans it again (nor reads ``~/.netrc``, which must not sign our
    calls with another password).
    """
    session = requests.Session()
    session.proxies = dict(requests.utils.get_environ_proxies(url))
    if verify is True:
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        session.verify = bundle or True
    else:
        session.verify = verify
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(1, pool_size))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def session_api(session: requests.Session, **options: Any) -> Any:
    """The official client, sending through ``session`` rather than ``requests.request``.

    The client's one private request method builds the URL, the auth (OAuth 1.0a signature
    in the query over plain http, Basic auth over https) and the headers, then calls the
    module-level ``requests.request``. The subclass repeats those few lines with the client's
    own URL and OAuth helpers and sends through the session (patching the module's
    ``request`` would not be thread-safe); the wire format stays the client's.
    """
    from urllib.parse import urlencode

    from requests.auth import HTTPBasicAuth
    from woocommerce import API

    class SessionAPI(API):  # type: ignore[misc]
        def _API__request(  # overrides the client's name-mangled private method
            self,
            method: str,
            endpoint: str,
            data: Any,
            params: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> requests.Response:
            params = {} if params is None else params
            url = self._API__get_url(endpoint)
            auth = None
            headers = {"user-agent": f"{self.user_agent}", "accept": "application/json"}
            if self.is_ssl:
                auth = HTTPBasicAuth(self.consumer_key, self.consumer_secret)
            else:
                url = self._API__get_oauth_url(f"{url}?{urlencode(params)}", method, **kwargs)
            body = None
            if data is not None:
                body = json.dumps(data, ensure_ascii=False).encode("utf-8")
                headers["content-type"] = "application/json;charset=utf-8"
            return session.request(
                method=method,
                url=url,
                auth=auth,
                params=params,
                data=body,
                timeout=self.timeout,
                headers=headers,
            )

    return SessionAPI(**options)
