import itertools

import pytest

from gig_etl.broker import EmbeddedBroker
from gig_etl.lib.kafka import KafkaConnection


@pytest.fixture(scope="session")
def kafka_broker():
    """One real embedded broker (Tansu) for the whole test session."""
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_connection(kafka_broker) -> KafkaConnection:
    return KafkaConnection(kafka_broker.bootstrap_servers)


_tenant_numbers = itertools.count()


@pytest.fixture
def tenant(request) -> str:
    """A tenant no other test uses: the broker is shared by the session."""
    return f"t{next(_tenant_numbers)}-{request.node.name[:40].replace('[', '-').replace(']', '')}"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """No test writes into the working directory."""
    home = tmp_path / "home"
    monkeypatch.setenv("GIG_ETL_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    return home


@pytest.fixture(scope="session")
def authenticating_broker():
    """A broker started with --authentication: it refuses clients that do not
    authenticate. Its memory store holds no users, so every password is wrong."""
    with EmbeddedBroker(authentication=True) as broker:
        yield broker


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """One real Postgres server (Debian's) for the session; each test takes a database of its own."""
    from gig_etl.servers import PostgresServer

    with PostgresServer(tmp_path_factory.mktemp("postgres"), password="team-pg-secret") as server:
        yield server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """One real S3 server (SeaweedFS) for the session; each test takes a prefix of its own."""
    from gig_etl.servers import SeaweedServer

    with SeaweedServer(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


_team_numbers = itertools.count()


def team_settings(postgres, s3, name: str) -> dict[str, str]:
    """The environment of a team deployment on these servers, as `make stack` sets
    it, with a database and an S3 prefix of its own."""
    from gig_etl.stack import stack_settings

    postgres.create_database(name)
    return stack_settings(postgres, s3, database=name, prefix=name)


@pytest.fixture
def team_deployment(postgres_server, s3_server, monkeypatch) -> dict[str, str]:
    """This test's environment points gig-etl at the shared servers."""
    settings = team_settings(postgres_server, s3_server, f"team{next(_team_numbers)}")
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return settings
