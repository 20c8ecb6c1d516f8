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
import requests.cookies
import requests.utils
from requests.structures import CaseInsensitiveDict
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
        # The URL as requests would normalise it (IDNA host, quoting), once.
        self.base_url = _normalised(base_url.rstrip("/"))
        self.timeout = split_timeout(timeout)
        self._session = session
        proxies: Dict[str, str] = {}
        if trust_env:
            proxies = requests.utils.get_environ_proxies(self.base_url)
            # A CA bundle matters only for TLS; for plain http requests would still stat it per request.
            if verify is True and parts.scheme == "https":
                verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            if auth is None:
                auth = requests.utils.get_netrc_auth(self.base_url)
        if auth is None and (parts.username or parts.password):
            # Credentials in the URL, as requests would take them.
            auth = requests.utils.get_auth_from_url(self.base_url)
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
        # The fast path sends what Session.request would, with all of this worked out here:
        # the session's headers merged with ours, and Basic credentials encoded once.
        self._proxies = proxies
        self._verify = verify
        self._cert = cert
        fixed = {**session.headers, **self._headers}
        self._per_request_auth: Optional[requests.auth.AuthBase] = auth
        if isinstance(auth, requests.auth.HTTPBasicAuth):
            fixed["Authorization"] = _basic_header(auth)
            self._per_request_auth = None
        check_header_values(fixed)
        self._fixed_headers = fixed
        self._fixed_json_headers = {**fixed, **_JSON_HEADERS}
        # Never written: requests copies it before taking cookies from a redirect.
        self._no_cookies = requests.cookies.RequestsCookieJar()

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
        payload: Optional[bytes] = None
        if body is not None:
            try:
                payload = json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
            except (TypeError, ValueError) as exc:
                raise VariableError("request body is not JSON-serializable: %s" % exc) from None
        timeout = self.timeout if read_timeout is None else (self.timeout[0], read_timeout)
        try:
            if params is None and data is None and files is None:
                return self._send(method, path, payload, accept, timeout)
            headers = self._headers if payload is None else self._json_headers
            if accept is not None:
                headers = {**headers, "Accept": accept}
            return self._session.request(
                method,
                self.base_url + path,
                params=params,
                data=payload if payload is not None else data,
                files=files,
                headers=headers,
                timeout=timeout,
                **self._settings,
            )
        except (requests.exceptions.InvalidHeader, ValueError) as exc:
            # A value that cannot go into a request, e.g. a header a custom auth set:
            # the exception quotes it, and it may be a secret, so its text stays out.
            raise ConfigurationError(
                "%s %s: the request cannot be built (%s); check the headers and credentials given"
                % (method, redact_url(self.base_url) + path, type(exc).__name__)
            ) from None
        except _TRANSPORT_FAULTS as exc:
            raise CamundaConnectionError(
                "%s %s failed: %s: %s" % (method, redact_url(self.base_url) + path, type(exc).__name__, exc)
            ) from exc

    def _send(
        self,
        method: str,
        path: str,
        payload: Optional[bytes],
        accept: Optional[str],
        timeout: Tuple[float, float],
    ) -> requests.Response:
        """The hot path (fetch, complete, lock, ...): a prepared request built directly.

        Session.request would merge settings, parse the URL and copy cookies on
        every call; here all of that was settled at construction. Cookies play no
        part in the Camunda and Sequin APIs.
        """
        prepared = requests.PreparedRequest()
        prepared.method = method
        prepared.url = self.base_url + path
        headers: CaseInsensitiveDict[Any] = CaseInsensitiveDict(
            self._fixed_headers if payload is None else self._fixed_json_headers
        )
        if accept is not None:
            headers["Accept"] = accept
        if payload is not None:
            headers["Content-Length"] = str(len(payload))
        elif method not in ("GET", "HEAD"):
            headers["Content-Length"] = "0"
        prepared.headers = headers
        prepared.body = payload
        prepared.hooks = {"response": []}
        prepared._cookies = self._no_cookies  # type: ignore[attr-defined]  # as prepare_cookies would set it
        if self._per_request_auth is not None:
            prepared = self._per_request_auth(prepared)
        return self._session.send(
            prepared,
            timeout=timeout,
            proxies=self._proxies,
            verify=self._verify,
            cert=self._cert,
            allow_redirects=False,
        )


def check_header_values(headers: Mapping[str, Any]) -> None:
    """Refuse header values HTTP cannot carry, naming the header but never its value.

    A token read from a file often ends with a newline; sent, it would fail every
    request with an error that quotes it.

    Raises:
        ConfigurationError: A value starts with whitespace or holds a line break or NUL.
    """
    for name, value in headers.items():
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if not isinstance(text, str) or (text and (text[0].isspace() or any(c in text for c in "\r\n\0"))):
            raise ConfigurationError(
                "the %s header's value cannot be sent: it must be text without leading whitespace, "
                "line breaks or NUL (the value is not shown)" % name
            )


def _normalised(url: str) -> str:
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    return str(prepared.url).rstrip("/")


def _basic_header(auth: requests.auth.HTTPBasicAuth) -> str:
    probe = requests.PreparedRequest()
    probe.headers = CaseInsensitiveDict()
    return str(auth(probe).headers["Authorization"])
