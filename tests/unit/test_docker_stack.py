"""Structure of docker/ (cannot run here): pinned images, no secrets, the names sql/ and the harness use."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import pytest
import yaml

from harness import docker_engine, migrations, sequin_server

ROOT = Path(__file__).resolve().parents[2]

DOCKER = ROOT / "docker"
MIGRATIONS_SQL = "\n".join(p.read_text(encoding="utf-8") for p in migrations.migration_files())
REFERENCE = re.compile(r"^\$\{[A-Z0-9_]+(?::?[-?][^}]*)?\}$")
SECRET_WORDS = ("PASSWORD", "TOKEN", "SECRET", "KEY")


def load(name: str) -> Dict[str, Any]:
    data: Dict[str, Any] = yaml.safe_load((DOCKER / name).read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def compose() -> Dict[str, Any]:
    return load("docker-compose.yml")


@pytest.fixture(scope="module")
def services(compose: Dict[str, Any]) -> Dict[str, Any]:
    found: Dict[str, Any] = compose["services"]
    return found


@pytest.fixture(scope="module")
def sequin() -> Dict[str, Any]:
    return load("sequin.yaml")


def walk(value: Any, path: str = "") -> Iterator[Tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, "%s.%s" % (path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, "%s[%d]" % (path, index))
    else:
        yield path, value


def test_services_are_present(services: Dict[str, Any]) -> None:
    assert set(services) >= {
        "postgres",
        "camunda",
        "migrate",
        "cdc-password",
        "sequin",
        "sequin-postgres",
        "sequin-redis",
    }


def test_every_image_is_pinned(services: Dict[str, Any]) -> None:
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag, "%s: image %s has no tag" % (name, image)
        assert "latest" not in tag and "/" not in tag, "%s: image %s is not pinned" % (name, image)
        assert re.search(r"\d", tag), "%s: tag of %s names no version" % (name, image)


def test_the_pinned_versions(services: Dict[str, Any]) -> None:
    assert services["camunda"]["image"] == docker_engine.IMAGE == "camunda/camunda-bpm-platform:run-7.24.0"
    assert services["sequin"]["image"] == "sequin/sequin:v0.14.6"
    assert services["migrate"]["image"].startswith("arigaio/atlas:")
    assert services["postgres"]["image"].startswith("postgres:15")


def test_published_ports_are_loopback_only(services: Dict[str, Any]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), "%s publishes %s beyond loopback" % (name, port)


def test_no_literal_secrets_in_compose(services: Dict[str, Any]) -> None:
    for name, service in services.items():
        for key, value in service.get("environment", {}).items():
            if any(word in key for word in SECRET_WORDS):
                assert REFERENCE.match(str(value)), "%s.%s is a literal, not ${...}" % (name, key)
        for path, value in walk(service):
            assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", str(value)), "credentials in a URL at %s%s" % (
                name,
                path,
            )


def test_no_literal_secrets_in_sequin_yaml(sequin: Dict[str, Any]) -> None:
    for token in sequin["api_tokens"]:
        assert REFERENCE.match(token["token"])
    for database in sequin["databases"]:
        assert REFERENCE.match(database["password"])


def test_env_example_holds_placeholders_and_env_is_ignored() -> None:
    example = (DOCKER / ".env.example").read_text(encoding="utf-8")
    values = dict(
        line.split("=", 1) for line in example.splitlines() if line.strip() and not line.startswith("#")
    )
    assert values, "docker/.env.example is empty"
    assert all("change-me" in value for value in values.values())
    assert ".env" in (DOCKER / ".gitignore").read_text(encoding="utf-8").split()


def test_every_variable_compose_needs_is_in_the_example(compose: Dict[str, Any]) -> None:
    text = (DOCKER / "docker-compose.yml").read_text(encoding="utf-8")
    needed = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    example = (DOCKER / ".env.example").read_text(encoding="utf-8")
    defined = set(re.findall(r"^([A-Z0-9_]+)=", example, re.MULTILINE))

    assert needed <= defined
    sequin_needs = set(re.findall(r"\$\{([A-Z0-9_]+)", (DOCKER / "sequin.yaml").read_text(encoding="utf-8")))
    environment = compose["services"]["sequin"]["environment"]
    assert sequin_needs <= set(environment)


def test_postgres_runs_with_logical_wal(services: Dict[str, Any]) -> None:
    command = " ".join(services["postgres"]["command"])

    assert "wal_level=logical" in command


def test_engine_runs_rest_only_in_utc_with_history_ttl(services: Dict[str, Any]) -> None:
    camunda = services["camunda"]

    assert camunda["command"] == ["./camunda.sh", "--rest"]
    assert "-Duser.timezone=UTC" in camunda["environment"]["JAVA_OPTS"]
    assert yaml.safe_load(camunda["environment"]["SPRING_APPLICATION_JSON"]) == yaml.safe_load(
        docker_engine.ENVIRONMENT["SPRING_APPLICATION_JSON"]
    )


def test_migrations_are_mounted_and_applied_before_sequin(services: Dict[str, Any]) -> None:
    migrate = services["migrate"]
    mounts = {volume.split(":")[0]: volume.split(":")[1] for volume in migrate["volumes"]}

    assert "../sql/migrations" in mounts
    command = migrate["command"]
    assert command[:2] == ["migrate", "apply"]
    assert command[command.index("--dir") + 1] == "file://%s" % mounts["../sql/migrations"]
    assert migrate["depends_on"]["camunda"]["condition"] == "service_healthy"
    password = services["cdc-password"]
    assert password["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert any(volume.startswith("../sql/cdc_password.psql:") for volume in password["volumes"])
    assert services["sequin"]["depends_on"]["cdc-password"]["condition"] == "service_completed_successfully"
    assert (DOCKER / "../sql/migrations").resolve() == migrations.MIGRATIONS_DIR


def test_sequin_uses_the_names_of_sql_and_the_harness(sequin: Dict[str, Any]) -> None:
    (database,) = sequin["databases"]
    (sink,) = sequin["sinks"]

    assert database["username"] == migrations.CDC_ROLE == "camunda_cdc"
    assert database["slot"]["name"] == migrations.SLOT == "camunda_ext_tasks_slot"
    assert database["publication"]["name"] == migrations.PUBLICATION == "camunda_ext_tasks_pub"
    assert database["hostname"] == "postgres"
    assert database["database"] == "camunda"
    assert sink["name"] == "camunda-ext-tasks"
    assert sink["database"] == database["name"]
    assert sink["source"]["include_tables"] == ["public.act_ru_ext_task"]
    assert sorted(sink["actions"]) == ["insert", "update"]
    assert sink["destination"] == {"type": "sequin_stream"}
    for name in ("camunda_cdc", "camunda_ext_tasks_slot", "camunda_ext_tasks_pub", "public.act_ru_ext_task"):
        assert name in MIGRATIONS_SQL


def test_the_harness_defaults_match(sequin: Dict[str, Any]) -> None:
    import inspect

    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(sequin_server.start_sequin_server).parameters.items()
    }
    database = sequin["databases"][0]

    assert defaults["consumer"] == sequin["sinks"][0]["name"]
    assert defaults["slot"] == database["slot"]["name"]
    assert defaults["publication"] == database["publication"]["name"]
    assert defaults["cdc_user"] == database["username"]
