"""Tests of camunda_ext._http: the shared session, its pool and retries, and per-host settings.

Environment settings (proxies, CA bundle, netrc) are honoured exactly as
requests honours them, but read once when the client is built.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Dict, Iterator

import pytest
import requests
import requests.adapters
import responses
from responses import matchers
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, ReadTimeoutError
from urllib3.util.retry import Retry

from camunda_ext import Client
from camunda_ext._http import Endpoint, build_session, redact_url, split_timeout
from camunda_ext.errors import CamundaConnectionError, ConfigurationError, VariableError
from tests.unit.conftest import BASE_URL, WORKER_ID

ENV_NAMES = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NETRC",
]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> pytest.MonkeyPatch:
    """No proxy, CA bundle or netrc from the machine running the tests."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    return monkeypatch


@pytest.fixture
def version_answers(engine: responses.RequestsMock) -> Iterator[responses.RequestsMock]:
    engine.get(BASE_URL + "/version", json={"version": "7.24.0"})
    yield engine


def requests_would_use(url: str) -> Dict[str, Any]:
    """The proxies and verify a plain ``requests.get(url)`` resolves from the environment."""
    settings = requests.Session().merge_environment_settings(url, {}, None, None, None)
    return {"proxies": settings["proxies"], "verify": settings["verify"]}


def sent_settings(engine: responses.RequestsMock) -> Dict[str, Any]:
    kwargs = engine.calls[-1].request.req_kwargs
    return {"proxies": kwargs["proxies"], "verify": kwargs["verify"]}


# --------------------------------------------------------------------------- session, pool, retries


def test_one_adapter_serves_http_and_https_with_the_configured_pool() -> None:
    client = Client(BASE_URL, WORKER_ID, pool_maxsize=37, trust_env=False)

    http = client.session.get_adapter("http://engine.test/")
    https = client.session.get_adapter("https://engine.test/")

    assert http is https
    assert isinstance(http, requests.adapters.HTTPAdapter)
    assert http._pool_maxsize == 37
    assert http.poolmanager.connection_pool_kw["maxsize"] == 37
    assert http._pool_connections >= 2


def test_the_pool_holds_100_connections_by_default() -> None:
    adapter = Client(BASE_URL, WORKER_ID, trust_env=False).session.get_adapter(BASE_URL)

    assert adapter._pool_maxsize == 100


def test_the_retry_policy_retries_connecting_but_never_reading() -> None:
    client = Client(BASE_URL, WORKER_ID, connect_retries=4, trust_env=False)
    retry = client.session.get_adapter(BASE_URL).max_retries

    assert isinstance(retry, Retry)
    assert retry.connect == 4
    assert retry.read == 0
    assert retry.status == 0
    assert retry.redirect == 0


def test_a_post_is_never_resent_after_a_read_error() -> None:
    retry = (
        build_session(pool_maxsize=1, pool_connections=1, connect_retries=3).get_adapter(BASE_URL).max_retries
    )
    error = ReadTimeoutError(None, "/engine-rest/external-task/t/complete", "read timed out")

    with pytest.raises((MaxRetryError, ReadTimeoutError)):
        retry.increment(method="POST", url="/engine-rest/external-task/t/complete", error=error)
    with pytest.raises((MaxRetryError, ReadTimeoutError)):
        retry.increment(method="GET", url="/engine-rest/version", error=error)


def test_a_failed_connection_set_up_is_retried() -> None:
    retry = (
        build_session(pool_maxsize=1, pool_connections=1, connect_retries=3).get_adapter(BASE_URL).max_retries
    )

    after = retry.increment(
        method="POST", url="/engine-rest/x", error=ConnectTimeoutError("connect timed out")
    )

    assert after.connect == 2


def test_the_session_takes_nothing_from_the_environment_itself(clean_env: pytest.MonkeyPatch) -> None:
    client = Client(BASE_URL, WORKER_ID)

    assert client.session.trust_env is False
    assert client.session.auth is None
    assert "Authorization" not in client.session.headers


# --------------------------------------------------------------------------- timeouts


@pytest.mark.parametrize(
    ("timeout", "pair"),
    [(30, (30.0, 30.0)), (2.5, (2.5, 2.5)), ((3, 60), (3.0, 60.0)), ((1.5, 2), (1.5, 2.0))],
)
def test_split_timeout(timeout: Any, pair: Any) -> None:
    assert split_timeout(timeout) == pair


def test_every_request_has_a_connect_and_read_timeout(version_answers: responses.RequestsMock) -> None:
    Client(BASE_URL, WORKER_ID, trust_env=False).version()
    Client(BASE_URL, WORKER_ID, timeout=12, trust_env=False).version()

    assert [call.request.req_kwargs["timeout"] for call in version_answers.calls] == [
        (5.0, 30.0),
        (12.0, 12.0),
    ]


def test_an_endpoint_read_timeout_override(engine: responses.RequestsMock) -> None:
    engine.get(BASE_URL + "/x", status=204)
    endpoint = Endpoint(requests.Session(), BASE_URL, timeout=(1, 2), trust_env=False)

    endpoint.request("GET", "/x", read_timeout=99.5)

    assert engine.calls[0].request.req_kwargs["timeout"] == (1.0, 99.5)


# --------------------------------------------------------------------------- urls and bodies


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("http://user:pw@engine.test:8080/engine-rest", "http://engine.test:8080/engine-rest"),
        ("https://user@engine.test/engine-rest?x=1", "https://engine.test/engine-rest?x=1"),
        ("http://engine.test/engine-rest", "http://engine.test/engine-rest"),
        ("http://:pw@[::1]:8080/r", "http://[::1]:8080/r"),
        ("http://u:p@ss@engine.test/r", "http://engine.test/r"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


@pytest.mark.parametrize("url", ["", "engine.test", "ftp://engine.test/x", "http://", "file:///etc/passwd"])
def test_an_endpoint_needs_an_http_url(url: str) -> None:
    with pytest.raises(ConfigurationError):
        Endpoint(requests.Session(), url)


def test_an_endpoint_repr_hides_credentials() -> None:
    endpoint = Endpoint(requests.Session(), "http://u:secret-pw@engine.test/r", trust_env=False)

    assert repr(endpoint) == "Endpoint('http://engine.test/r')"


def test_a_body_that_is_no_json_is_a_variable_error(engine: responses.RequestsMock) -> None:
    endpoint = Endpoint(requests.Session(), BASE_URL, trust_env=False)

    with pytest.raises(VariableError):
        endpoint.request("POST", "/x", body={"value": float("nan")})
    with pytest.raises(VariableError):
        endpoint.request("POST", "/x", body={"value": object()})

    assert len(engine.calls) == 0


def test_json_bodies_are_compact_json(engine: responses.RequestsMock) -> None:
    engine.post(
        BASE_URL + "/x", status=204, match=[matchers.header_matcher({"Content-Type": "application/json"})]
    )
    endpoint = Endpoint(requests.Session(), BASE_URL, trust_env=False)

    endpoint.request("POST", "/x", body={"name": "héllo ✓", "n": [1, 2]})

    body = engine.calls[0].request.body
    assert json.loads(body) == {"name": "héllo ✓", "n": [1, 2]}
    assert b", " not in body
    assert b": " not in body


def test_an_accept_override(engine: responses.RequestsMock) -> None:
    engine.get(BASE_URL + "/x", status=204, match=[matchers.header_matcher({"Accept": "text/plain"})])
    endpoint = Endpoint(
        build_session(pool_maxsize=1, pool_connections=1, connect_retries=0), BASE_URL, trust_env=False
    )

    endpoint.request("GET", "/x", accept="text/plain")


def test_transport_faults_name_the_request(engine: responses.RequestsMock) -> None:
    fault = requests.exceptions.ConnectTimeout("timed out")
    engine.get(BASE_URL + "/x", body=fault)
    endpoint = Endpoint(requests.Session(), BASE_URL, trust_env=False)

    with pytest.raises(CamundaConnectionError) as caught:
        endpoint.request("GET", "/x", params={"a": "1"})

    assert str(caught.value) == "GET %s/x failed: ConnectTimeout: timed out" % BASE_URL
    assert caught.value.__cause__ is fault


# --------------------------------------------------------------------------- the environment


def test_tls_is_verified_by_default(
    clean_env: pytest.MonkeyPatch, version_answers: responses.RequestsMock
) -> None:
    Client(BASE_URL, WORKER_ID).version()

    assert sent_settings(version_answers) == {"proxies": {}, "verify": True}
    assert sent_settings(version_answers) == requests_would_use(BASE_URL + "/version")


TLS_URL = "https://engine.test/engine-rest"


@pytest.mark.parametrize("name", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_a_ca_bundle_from_the_environment_is_used_like_requests(
    clean_env: pytest.MonkeyPatch, engine: responses.RequestsMock, name: str
) -> None:
    engine.get(TLS_URL + "/version", json={"version": "7.24.0"})
    clean_env.setenv(name, "/etc/corp/ca.pem")

    Client(TLS_URL, WORKER_ID).version()

    assert engine.calls[0].request.req_kwargs["verify"] == "/etc/corp/ca.pem"
    assert sent_settings(engine) == requests_would_use(TLS_URL + "/version")


def test_a_ca_bundle_is_not_applied_to_plain_http(
    clean_env: pytest.MonkeyPatch, version_answers: responses.RequestsMock
) -> None:
    # Plain http has no TLS to verify; requests would only stat the file on every call.
    clean_env.setenv("REQUESTS_CA_BUNDLE", "/etc/corp/ca.pem")

    Client(BASE_URL, WORKER_ID).version()

    assert version_answers.calls[0].request.req_kwargs["verify"] is True


@pytest.mark.parametrize("verify", [False, "/etc/mine.pem"])
def test_an_explicit_verify_wins_over_the_environment(
    clean_env: pytest.MonkeyPatch, version_answers: responses.RequestsMock, verify: Any
) -> None:
    clean_env.setenv("REQUESTS_CA_BUNDLE", "/etc/corp/ca.pem")

    Client(BASE_URL, WORKER_ID, verify=verify).version()

    assert version_answers.calls[0].request.req_kwargs["verify"] == verify


def test_a_client_certificate_is_passed_on(
    clean_env: pytest.MonkeyPatch, version_answers: responses.RequestsMock
) -> None:
    Client(BASE_URL, WORKER_ID, cert=("/etc/c.pem", "/etc/k.pem")).version()

    assert version_answers.calls[0].request.req_kwargs["cert"] == ("/etc/c.pem", "/etc/k.pem")


@pytest.mark.parametrize(
    "env",
    [
        {"HTTP_PROXY": "http://proxy.corp:3128"},
        {"http_proxy": "http://proxy.corp:3128", "https_proxy": "http://tls-proxy.corp:3129"},
        {"ALL_PROXY": "socks5://proxy.corp:1080"},
        {"HTTP_PROXY": "http://proxy.corp:3128", "NO_PROXY": "engine.test"},
        {"HTTP_PROXY": "http://proxy.corp:3128", "NO_PROXY": ".test"},
        {"HTTP_PROXY": "http://proxy.corp:3128", "NO_PROXY": "other.test,localhost"},
        {"HTTP_PROXY": "http://proxy.corp:3128", "no_proxy": "*"},
    ],
    ids=[
        "http",
        "lower-case-both",
        "all",
        "no-proxy-host",
        "no-proxy-domain",
        "no-proxy-other",
        "no-proxy-star",
    ],
)
def test_proxies_from_the_environment_are_used_like_requests(
    clean_env: pytest.MonkeyPatch, version_answers: responses.RequestsMock, env: Dict[str, str]
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)

    Client(BASE_URL, WORKER_ID).version()

    assert sent_settings(version_answers) == requests_would_use(BASE_URL + "/version")


def test_a_proxy_is_used_unless_no_proxy_names_the_engine(
    clean_env: pytest.MonkeyPatch, engine: responses.RequestsMock
) -> None:
    engine.get(BASE_URL + "/version", json={"version": "7.24.0"})
    engine.get(BASE_URL + "/version", json={"version": "7.24.0"})
    clean_env.setenv("HTTP_PROXY", "http://proxy.corp:3128")
    proxied = Client(BASE_URL, WORKER_ID)
    clean_env.setenv("NO_PROXY", "engine.test")
    direct = Client(BASE_URL, WORKER_ID)

    proxied.version()
    direct.version()

    assert engine.calls[0].request.req_kwargs["proxies"]["http"] == "http://proxy.corp:3128"
    assert "http" not in engine.calls[1].request.req_kwargs["proxies"]


def test_the_environment_is_read_once_at_construction(
    clean_env: pytest.MonkeyPatch, engine: responses.RequestsMock
) -> None:
    engine.get(TLS_URL + "/version", json={"version": "7.24.0"})
    engine.get(TLS_URL + "/version", json={"version": "7.24.0"})
    clean_env.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    clean_env.setenv("REQUESTS_CA_BUNDLE", "/etc/corp/ca.pem")
    client = Client(TLS_URL, WORKER_ID)
    client.version()
    before = sent_settings(engine)

    clean_env.setenv("HTTPS_PROXY", "http://other-proxy.corp:8080")
    clean_env.setenv("NO_PROXY", "*")
    clean_env.setenv("REQUESTS_CA_BUNDLE", "/etc/other.pem")
    client.version()

    assert sent_settings(engine) == before
    assert before == {"proxies": {"https": "http://proxy.corp:3128"}, "verify": "/etc/corp/ca.pem"}


def test_trust_env_false_ignores_the_environment(
    clean_env: pytest.MonkeyPatch, version_answers: responses.RequestsMock
) -> None:
    clean_env.setenv("HTTP_PROXY", "http://proxy.corp:3128")
    clean_env.setenv("REQUESTS_CA_BUNDLE", "/etc/corp/ca.pem")

    Client(BASE_URL, WORKER_ID, trust_env=False).version()

    assert sent_settings(version_answers) == {"proxies": {}, "verify": True}


def use_netrc(env: pytest.MonkeyPatch, folder: Any) -> None:
    """A netrc file with credentials for engine.test, found through NETRC."""
    netrc = folder / "netrc"
    netrc.write_text("machine engine.test login demo password netrc-pw\n")
    netrc.chmod(0o600)
    env.setenv("NETRC", str(netrc))


def test_netrc_credentials_are_used_like_requests(
    clean_env: pytest.MonkeyPatch, engine: responses.RequestsMock, tmp_path: Any
) -> None:
    use_netrc(clean_env, tmp_path)
    expected = "Basic " + base64.b64encode(b"demo:netrc-pw").decode("ascii")
    engine.get(
        BASE_URL + "/version",
        json={"version": "7.24.0"},
        match=[matchers.header_matcher({"Authorization": expected})],
    )

    Client(BASE_URL, WORKER_ID).version()


def test_explicit_auth_wins_over_netrc(
    clean_env: pytest.MonkeyPatch, engine: responses.RequestsMock, tmp_path: Any
) -> None:
    use_netrc(clean_env, tmp_path)
    expected = "Basic " + base64.b64encode(b"ops:given-pw").decode("ascii")
    engine.get(
        BASE_URL + "/version",
        json={"version": "7.24.0"},
        match=[matchers.header_matcher({"Authorization": expected})],
    )

    Client(BASE_URL, WORKER_ID, auth=("ops", "given-pw")).version()


def test_one_hosts_auth_never_reaches_another(engine: responses.RequestsMock) -> None:
    session = build_session(pool_maxsize=2, pool_connections=2, connect_retries=0)
    camunda = Endpoint(session, BASE_URL, auth=("demo", "engine-pw"), trust_env=False)
    other = Endpoint(session, "http://sequin.test/api", headers={"X-Other": "1"}, trust_env=False)
    engine.get(BASE_URL + "/version", json={"version": "7.24.0"})
    engine.get("http://sequin.test/api/x", status=204)

    camunda.request("GET", "/version")
    other.request("GET", "/x")

    assert engine.calls[0].request.headers["Authorization"].startswith("Basic ")
    assert "Authorization" not in engine.calls[1].request.headers
    assert "X-Other" not in engine.calls[0].request.headers


@pytest.mark.parametrize("value", ["Bearer s3cret-token\n", " Bearer s3cret-token", "Bearer s3cret\r\nX: 1"])
def test_a_header_value_http_cannot_carry_is_refused_without_showing_it(value: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        Endpoint(requests.Session(), BASE_URL, headers={"Authorization": value}, trust_env=False)

    assert "Authorization" in str(refused.value)
    assert "s3cret" not in str(refused.value) + repr(refused.value)


def test_a_header_an_auth_sets_that_cannot_be_sent_is_a_configuration_error_that_hides_it() -> None:
    class LeakyAuth(requests.auth.AuthBase):
        def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
            # What http.client raises when it is given a header value with a line break.
            raise ValueError("Invalid header value b'Bearer s3cret-token\\n'")

    endpoint = Endpoint(requests.Session(), BASE_URL, auth=LeakyAuth(), trust_env=False)

    with pytest.raises(ConfigurationError) as refused:
        endpoint.request("GET", "/version")

    assert "s3cret" not in str(refused.value) + repr(refused.value)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__
