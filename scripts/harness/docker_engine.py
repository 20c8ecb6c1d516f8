"""The engine of docker/ (Camunda Run 7.24.0) started through the docker SDK, for machines with Docker.

It runs the same image and settings as ``docker/docker-compose.yml`` (REST only,
UTC, history TTL set), publishes its port on 127.0.0.1 only, waits until the
REST API answers, and removes the container on stop.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Optional

from harness._proc import free_port
from harness.errors import HarnessError

IMAGE = "camunda/camunda-bpm-platform:run-7.24.0"
READY_TIMEOUT = 180.0
#: Engine settings shared with docker/docker-compose.yml.
ENVIRONMENT = {
    "JAVA_OPTS": "-Xmx768m -Duser.timezone=UTC",
    "SPRING_APPLICATION_JSON": json.dumps(
        {"camunda": {"bpm": {"generic-properties": {"properties": {"history-time-to-live": "P1D"}}}}}
    ),
}


def _probe(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/engine", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _docker_client() -> Any:
    try:
        import docker
    except ImportError as error:
        raise HarnessError("the docker SDK is not installed: pip install docker") from error
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        raise HarnessError("no Docker engine is reachable: %s" % error) from error
    return client


class DockerEngine:
    """A Camunda Run container. Not thread-safe: start and stop it from one thread.

    Args:
        docker_client: A ``docker.DockerClient``; one from the environment when None.
        image: The engine image.
        port: Host port on 127.0.0.1; a free one when None.
        probe: Answers whether the REST API at a URL is ready (for tests).
        clock: Monotonic time (for tests).
        pause: Waits between probes (for tests).
    """

    auth = None

    def __init__(
        self,
        docker_client: Any = None,
        *,
        image: str = IMAGE,
        port: Optional[int] = None,
        probe: Callable[[str], bool] = _probe,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self._docker = docker_client
        self.image = image
        self.port = port or free_port()
        self._probe = probe
        self._clock = clock
        self._pause = pause
        self.container: Any = None

    @property
    def url(self) -> str:
        """The REST API root."""
        return "http://127.0.0.1:%d/engine-rest" % self.port

    def start(self, timeout: float = READY_TIMEOUT) -> DockerEngine:
        """Run the container and wait until the REST API answers.

        Raises:
            HarnessError: No Docker engine, or the container exited or was not ready in time.
        """
        if self._docker is None:
            self._docker = _docker_client()
        self.container = self._docker.containers.run(
            self.image,
            command=["./camunda.sh", "--rest"],
            detach=True,
            environment=ENVIRONMENT,
            ports={"8080/tcp": ("127.0.0.1", self.port)},
            labels={"camunda-ext": "demo-engine"},
        )
        deadline = self._clock() + timeout
        while not self._probe(self.url):
            self.container.reload()
            if self.container.status == "exited":
                logs = self.container.logs(tail=40).decode("utf-8", "replace")
                self.stop()
                raise HarnessError("the engine container exited:\n%s" % logs)
            if self._clock() > deadline:
                self.stop()
                raise HarnessError("the engine container was not ready after %.0f s" % timeout)
            self._pause(1.0)
        return self

    def stop(self) -> None:
        """Stop and remove the container (if started)."""
        if self.container is None:
            return
        container, self.container = self.container, None
        container.stop(timeout=10)
        container.remove()

    def __enter__(self) -> DockerEngine:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def start_docker_engine(docker_client: Any = None, **options: Any) -> DockerEngine:
    """Start the docker/ engine image and wait until it is ready (see :class:`DockerEngine`)."""
    return DockerEngine(docker_client, **options).start()
