"""The demo's Docker path (harness.docker_engine) against a mocked docker SDK client."""

from __future__ import annotations

from typing import Any, List
from unittest import mock

import pytest

import docker
from harness.docker_engine import ENVIRONMENT, IMAGE, DockerEngine
from harness.errors import HarnessError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def docker_client() -> Any:
    client = mock.create_autospec(docker.DockerClient, instance=True)
    client.containers = mock.create_autospec(docker.models.containers.ContainerCollection, instance=True)
    container = mock.create_autospec(docker.models.containers.Container, instance=True)
    container.status = "running"
    client.containers.run.return_value = container
    return client


def test_start_runs_the_pinned_image_on_loopback_and_waits_until_ready(docker_client: Any) -> None:
    answers = iter([False, False, True])
    probed: List[str] = []

    def probe(url: str) -> bool:
        probed.append(url)
        return next(answers)

    pauses: List[float] = []
    engine = DockerEngine(docker_client, port=18080, probe=probe, clock=Clock(), pause=pauses.append)

    engine.start()

    docker_client.containers.run.assert_called_once_with(
        IMAGE,
        command=["./camunda.sh", "--rest"],
        detach=True,
        environment=ENVIRONMENT,
        ports={"8080/tcp": ("127.0.0.1", 18080)},
        labels={"camunda-ext": "demo-engine"},
    )
    assert IMAGE.endswith(":run-7.24.0")
    assert "-Duser.timezone=UTC" in ENVIRONMENT["JAVA_OPTS"]
    assert engine.url == "http://127.0.0.1:18080/engine-rest"
    assert probed == [engine.url] * 3
    assert pauses == [1.0, 1.0]


def test_stop_stops_and_removes_the_container_once(docker_client: Any) -> None:
    container = docker_client.containers.run.return_value
    with DockerEngine(docker_client, port=18080, probe=lambda url: True).start():
        pass

    container.stop.assert_called_once_with(timeout=10)
    container.remove.assert_called_once_with()


def test_a_container_that_exits_is_reported_with_its_logs_and_removed(docker_client: Any) -> None:
    container = docker_client.containers.run.return_value
    container.status = "exited"
    container.logs.return_value = b"Error: unable to access jarfile"

    with pytest.raises(HarnessError, match="unable to access jarfile"):
        DockerEngine(docker_client, port=18080, probe=lambda url: False, pause=lambda s: None).start()

    container.remove.assert_called_once_with()


def test_an_engine_not_ready_in_time_is_stopped(docker_client: Any) -> None:
    clock = Clock()

    def pause(seconds: float) -> None:
        clock.now += seconds

    with pytest.raises(HarnessError, match="not ready after 3 s"):
        DockerEngine(docker_client, port=18080, probe=lambda url: False, clock=clock, pause=pause).start(
            timeout=3
        )

    docker_client.containers.run.return_value.remove.assert_called_once_with()


def test_no_reachable_docker_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable() -> Any:
        raise docker.errors.DockerException("Error while fetching server API version")

    monkeypatch.setattr(docker, "from_env", unreachable)

    with pytest.raises(HarnessError, match="no Docker engine is reachable"):
        DockerEngine(port=18080).start()
