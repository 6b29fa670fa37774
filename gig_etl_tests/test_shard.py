"""Shards of a drain: which partitions each owns, and how their locks combine."""

import pytest

from gig_etl.lib.lock import IntegrationBusy, integration_lock
from gig_etl.lib.shard import Shard, all_shards
from gig_etl_tests.locking import held_in_another_thread


def test_every_partition_belongs_to_exactly_one_shard():
    for count in (1, 2, 3, 7):
        owners = [[s.index for s in all_shards(count) if s.owns(p)] for p in range(40)]
        assert owners == [[p % count] for p in range(40)]


def test_a_shard_is_spelled_k_of_n_and_must_exist():
    assert Shard.parse(" 1/3 ") == Shard(1, 3) and Shard(1, 3).name == "shard-1-of-3"
    for wrong in ("3/3", "-1/2", "1", "a/b", "1/0"):
        with pytest.raises(ValueError):
            Shard.parse(wrong)


def test_shards_drain_side_by_side_while_a_whole_drain_or_a_load_waits_for_them(tmp_path):
    with held_in_another_thread(lambda: integration_lock(tmp_path, "it", "shard 0's drain", 5, shard=Shard(0, 2))):
        with integration_lock(tmp_path, "it", "shard 1's drain", 0.3, shard=Shard(1, 2)):
            pass
        with pytest.raises(IntegrationBusy, match="integration 'it' shard 0/2 is busy"):
            with integration_lock(tmp_path, "it", "shard 0 again", 0.3, shard=Shard(0, 2)):
                pass
        with pytest.raises(IntegrationBusy, match="integration 'it' is busy"):
            with integration_lock(tmp_path, "it", "the load", 0.3):
                pass
    with integration_lock(tmp_path, "it", "the load, after them", 1):
        pass


def test_a_tick_is_one_run_in_the_integrations_slot_or_a_run_per_shard_each_in_a_slot_of_its_own():
    from gig_etl.defs.integrations.jobs import SLOT_TAG, TICK_TAG, tick_requests

    [whole] = tick_requests("acme", "acme:t1", "t1", 1, {})
    assert whole.tags[SLOT_TAG] == "acme" and whole.partition_key == "acme" and whole.job_name is None
    shards = tick_requests("acme", "acme:t1", "t1", 3, {})
    assert [r.tags[SLOT_TAG] for r in shards] == ["acme/shard-0-of-3", "acme/shard-1-of-3", "acme/shard-2-of-3"]
    assert {r.tags[TICK_TAG] for r in shards} == {"t1"} and {r.job_name for r in shards} == {"drain_shard"}
    assert [r.run_config["ops"]["raw_topics"]["config"] for r in shards] == [
        {"shard_index": k, "shard_count": 3} for k in range(3)
    ]
    assert len({r.run_key for r in shards}) == 3
