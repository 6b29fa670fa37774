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
