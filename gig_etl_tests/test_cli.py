import signal
import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from confluent_kafka.admin import AdminClient

from gig_etl.broker import free_port
from gig_etl.cli import main
from gig_etl.contract import TopicKind
from gig_etl.lib.kafka import KafkaConnection


def test_simulate_produces_and_reports(kafka_broker, tenant):
    result = CliRunner().invoke(
        main,
        ["simulate", "--bootstrap-servers", kafka_broker.bootstrap_servers, "--tenant", tenant,
         "--customers", "50", "--seed", "4", "--chaos", "0.1", "--partitions", "3"],
    )
    assert result.exit_code == 0, result.output
    assert "customers: 50" in result.output
    assert "chaos: " in result.output
    topics = AdminClient(KafkaConnection(kafka_broker.bootstrap_servers).client_config()).list_topics(timeout=10).topics
    for kind in TopicKind:
        assert len(topics[kind.topic(tenant)].partitions) == 3


def test_simulate_against_an_unreachable_broker_says_so_in_one_line():
    result = CliRunner().invoke(
        main, ["simulate", "--bootstrap-servers", "127.0.0.1:9", "--tenant", "x", "--customers", "1"]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"Error: {result.output.strip()[7:]}"]
    assert "127.0.0.1:9" in result.output and "Traceback" not in result.output


def test_bad_arguments_exit_2():
    result = CliRunner().invoke(main, ["simulate", "--bootstrap-servers", "x:1", "--tenant", "x", "--customers", "-1"])
    assert result.exit_code == 2


def _as_from_a_terminal() -> None:
    # A shell starts background jobs with SIGINT ignored and children inherit that;
    # a terminal's foreground command has it at its default, which Ctrl-C relies on.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_broker_command_serves_until_stopped_and_takes_its_broker_with_it(stop):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gig_etl.cli", "broker", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_as_from_a_terminal,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the broker never listened"
                time.sleep(0.1)
    finally:
        process.send_signal(stop)
        assert process.wait(timeout=10) == 0
    time.sleep(0.2)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        still_listening = True
    except OSError:
        still_listening = False
    assert not still_listening


def test_a_name_with_a_trailing_newline_is_refused_in_one_line():
    result = CliRunner().invoke(
        main, ["integrations", "create", "acme\n", "--tenant-id", "acme-casino", "--bootstrap-servers", "b:9092"]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["Error: the name 'acme\\n' holds a control character (a newline, a tab, a NUL): remove it"]


def test_a_run_against_an_unreachable_broker_prints_one_line_and_no_librdkafka_log(tmp_path):
    from gig_etl_tests.pipeline import gig_etl_process, register

    register(tmp_path, "gone", "acme", f"127.0.0.1:{free_port()}")
    # Before, librdkafka wrote a line per reconnect to stderr (about 60 in 3 s).
    done = subprocess.run(**gig_etl_process(tmp_path, "run", "--integration", "gone"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert not [line for line in lines if line.startswith("%")], lines
    assert len(lines) == 1 and "gone: run " in lines[0] and "unreachable" in lines[0], lines


def test_the_command_line_has_a_version_a_short_help_and_names_its_home():
    version = CliRunner().invoke(main, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("gig-etl, version ")
    short = CliRunner().invoke(main, ["integrations", "create", "-h"])
    assert short.exit_code == 0 and "--sasl-mechanism [SCRAM-SHA-512|SCRAM-SHA-256|PLAIN]" in short.output
    assert "$GIG_ETL_HOME" in CliRunner().invoke(main, ["-h"]).output
