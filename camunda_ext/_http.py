"""HTTP plumbing shared by the engine client and the Sequin client.

One :class:`requests.Session` with one :class:`~requests.adapters.HTTPAdapter`
serves every host. Each host gets an :class:`Endpoint` that holds what requests
would otherwise work out on every call (proxies, CA bundle and netrc from the
environment) and that host's own credentials, so one host's auth never reaches
another. Transport exceptions of requests become
:class:`~camunda_ext.errors.CamundaConnectionError` here and nowhere else.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit, urlunsplit

import requests
import requests.adapters
import requests.auth
import requests.utils
from urllib3.util.retry import Retry

from camunda_ext.errors import CamundaConnectionError, ConfigurationError, VariableError

Timeout = Union[float, Tuple[float, float]]
Auth = Union[Tuple[str, str], requests.auth.AuthBase, None]

_JSON_HEADERS = {"Content-Type": "application/json"}

#: Transport faults: the request got no usable answer.
_TRANSPORT_FAULTS = (requests.exceptions.RequestException,)


def build_session(*, pool_maxsize: int, pool_connections: int, connect_retries: int) -> requests.Session:
    """Build the one session all endpoints share; it is never mutated afterwards.

    Args:
        pool_maxsize: Connections kept per host: at least the peak number of
            concurrent requests to one host.
        pool_connections: Number of per-host pools: at least the number of hosts.
        connect_retries: Times a failed connection set-up is retried. Requests that
            were sent are never re-sent (``read=0``): a POST may have taken effect.
    """
    session = requests.Session()
    # Environment settings are resolved once per Endpoint, not on every request.
    session.trust_env = False
    retry = Retry(
        total=None,
        connect=connect_retries,
        read=0,
        redirect=0,
        status=0,
        other=0,
        backoff_factor=0.1,
        raise_on_status=False,
    )
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=pool_connections, pool_maxsize=pool_maxsize, max_retries=retry
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["Accept"] = "application/json"
    session.headers["User-Agent"] = "camunda-ext"
    return session


def split_timeout(timeout: Timeout) -> Tuple[float, float]:
    """``30`` -> ``(30, 30)``; a ``(connect, read)`` pair is kept. Seconds."""
    if isinstance(timeout, (int, float)):
        return (float(timeout), float(timeout))
    connect, read = timeout
    return (float(connect), float(read))


def redact_url(url: str) -> str:
    """The URL without user info, for logs and reprs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class Endpoint:
    """Requests to one base URL, with that host's settings resolved once.

    Thread-safe: holds only immutable settings and the shared session.

    Args:
        session: The shared session.
        base_url: Root of the API, e.g. ``http://localhost:8080/engine-rest``.
        auth: ``(user, password)`` for Basic auth or any ``requests.auth.AuthBase``.
        headers: Extra headers sent with every request to this host.
        timeout: Default ``(connect, read)`` timeout in seconds.
        verify: TLS verification: True, False or a CA bundle path.
        cert: Client certificate: a path or a ``(cert, key)`` pair.
        trust_env: Take proxies, CA bundle and netrc credentials from the environment,
            as requests does.
    """

    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        *,
        auth: Auth = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout: Timeout = (5.0, 30.0),
        verify: Union[bool, str] = True,
        cert: Union[str, Tuple[str, str], None] = None,
        trust_env: bool = True,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError("not an http(s) URL: %r" % redact_url(base_url))
        self.base_url = base_url.rstrip("/")
        self.timeout = split_timeout(timeout)
        self._session = session
        proxies: Dict[str, str] = {}
        if trust_env:
            proxies = requests.utils.get_environ_proxies(self.base_url)
            if verify is True:
                verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            if auth is None:
                auth = requests.utils.get_netrc_auth(self.base_url)
        if isinstance(auth, tuple):
            auth = requests.auth.HTTPBasicAuth(*auth)
        self._settings: Dict[str, Any] = {
            "auth": auth,
            "proxies": proxies,
            "verify": verify,
            "cert": cert,
            "allow_redirects": False,
        }
        self._headers = dict(headers or {})
        self._json_headers = {**self._headers, **_JSON_HEADERS}

    def __repr__(self) -> str:
        return "Endpoint(%r)" % redact_url(self.base_url)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Optional[Mapping[str, Any]] = None,
        data: Optional[Mapping[str, Any]] = None,
        files: Any = None,
        read_timeout: Optional[float] = None,
        accept: Optional[str] = None,
    ) -> requests.Response:
        """Send one request and return the answer, whatever its status.

        Args:
            method: HTTP method.
            path: Path below the base URL, starting with ``/``.
            body: A JSON-serializable body, sent as ``application/json``.
            params: Query parameters.
            data: Form fields (with ``files``, a multipart body).
            files: Multipart file parts as requests takes them.
            read_timeout: Read timeout in seconds, instead of the default.
            accept: The Accept header, instead of ``application/json``.

        Raises:
            CamundaConnectionError: No answer: refused, reset, timed out, TLS failure.
            VariableError: The body is not JSON-serializable.
        """
        headers = self._headers
        payload: Any = data
        if body is not None:
            try:
                payload = json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
            except (TypeError, ValueError) as exc:
                raise VariableError("request body is not JSON-serializable: %s" % exc) from None
            headers = self._json_headers
        if accept is not None:
            headers = {**headers, "Accept": accept}
        timeout = self.timeout if read_timeout is None else (self.timeout[0], read_timeout)
        try:
            return self._session.request(
                method,
                self.base_url + path,
                params=params,
                data=payload,
                files=files,
                headers=headers,
                timeout=timeout,
                **self._settings,
            )
        except _TRANSPORT_FAULTS as exc:
            raise CamundaConnectionError(
                "%s %s failed: %s: %s" % (method, redact_url(self.base_url) + path, type(exc).__name__, exc)
            ) from exc
