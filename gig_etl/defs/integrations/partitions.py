import dagster as dg

# One partition per approved integration, added by the approval sensor.
integrations_partitions = dg.DynamicPartitionsDefinition(name="integrations")
