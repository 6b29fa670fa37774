from gig_etl.instance import dagster_instance


def test_the_instance_runs_one_run_at_a_time_per_slot(tmp_path):
    instance = dagster_instance(tmp_path)
    queue = instance.get_concurrency_config().run_queue_config
    assert queue.tag_concurrency_limits == [{"key": "gig_etl/slot", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
    assert queue.max_concurrent_runs == 8


def test_the_daemon_fails_a_run_whose_process_died_once_it_outlives_any_refresh(tmp_path):
    instance = dagster_instance(tmp_path)
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_max_runtime_seconds == 7200
