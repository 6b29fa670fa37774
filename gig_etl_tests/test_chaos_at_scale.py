"""Bad input at scale: 8,000 customers with 5% chaos, produced and run through
the command line as an operator would; every message is accounted for."""

import re
import subprocess
import time
from pathlib import Path

import pytest

from gig_etl.lib.warehouse import embedded_lake, open_lake
from gig_etl_tests.pipeline import gig_etl_process, register

def gig_etl(home: Path, *args: str) -> str:
    result = subprocess.run(**gig_etl_process(home, *args), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    # Long work piped: no progress bar (test_progress.py draws them on a terminal).
    assert "\r" not in result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_chaos_over_8k_customers_every_message_is_loaded_a_duplicate_or_quarantined(
    kafka_broker, tenant, isolated_home
):
    started = time.monotonic()
    simulated = gig_etl(
        isolated_home, "simulate", "--bootstrap-servers", kafka_broker.bootstrap_servers, "--tenant", tenant,
        "--customers", "8000", "--chaos", "0.05", "--seed", "11",
    )
    produced = int(re.search(r"^messages: ([\d,]+)", simulated, re.M).group(1).replace(",", ""))
    register(isolated_home, "chaotic", tenant, kafka_broker.bootstrap_servers)
    ran = gig_etl(isolated_home, "run", "--integration", "chaotic")

    assert "chaotic: run " in ran and " succeeded" in ran
    read, loaded, duplicates, quarantined = (
        int(n.replace(",", ""))
        for n in re.search(r"load: ([\d,]+) read = ([\d,]+) loaded \+ ([\d,]+) duplicates \+ ([\d,]+) quarantined", ran).groups()
    )
    assert produced == read == loaded + duplicates + quarantined
    assert duplicates > 0 and quarantined > 0
    with open_lake(embedded_lake(isolated_home), read_only=True) as db:
        [(kept,)] = db.execute("SELECT count(*) FROM quarantine WHERE integration = 'chaotic'").fetchall()
    # Quarantine keeps every bad message, except those about customers erased, which the run counts.
    erased = re.search(r"quarantine: ([\d,]+) messages about erased customers not kept", ran)
    assert 0 < kept == quarantined - (int(erased.group(1).replace(",", "")) if erased else 0)
    print(f"{produced:,} messages: {loaded:,} loaded + {duplicates:,} duplicates + {quarantined:,} quarantined "
          f"in {time.monotonic() - started:.0f}s")
