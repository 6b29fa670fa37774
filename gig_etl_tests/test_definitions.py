import dagster as dg

from gig_etl.definitions import defs


def test_the_code_location_loads():
    dg.Definitions.validate_loadable(defs)


def test_every_asset_has_a_group_kinds_and_a_description():
    for spec in defs.resolve_all_asset_specs():
        assert spec.group_name in {"raw", "warehouse", "marts"}, spec.key
        assert spec.kinds, spec.key
        assert spec.description, spec.key
