# Who answers for gig-etl's assets, as the Dagster UI shows it.
OWNERS = ["team:data-engineering"]
