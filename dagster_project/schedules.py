"""The nightly cadence, in one place: when ingest runs and by when each layer must be fresh.

There is no job schedule: the cadence is declarative (``dagster_project.automation``) — ingest assets carry an
``on_cron`` condition at ``NIGHTLY_CRON`` and everything downstream follows eagerly, so Dagster knows what is due,
what is stale and why. The jobs stay for explicit runs (``dagster job execute -j nightly_refresh``, CI).
"""

from datetime import timedelta

NIGHTLY_CRON = "0 3 * * *"  # 03:00 every night, Moscow time (pet911 and most channels are Russian)
TIMEZONE = "Europe/Moscow"
INGEST_DEADLINE_CRON = "0 6 * * *"  # ingest is late if not materialized between 03:00 and 06:00
INGEST_WINDOW = timedelta(hours=3)
CURATED_FAIL_AFTER = timedelta(hours=30)  # curation/dataset: one missed night warns, two fail
CURATED_WARN_AFTER = timedelta(hours=26)
MODEL_FAIL_AFTER = timedelta(days=8)  # the model follows new splits; a week without a new version is worth a look
MODEL_WARN_AFTER = timedelta(days=2)
