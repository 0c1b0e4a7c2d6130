"""Schedules. Created stopped: turn them on in the UI (or `dagster schedule start`) once sources are configured."""

from dagster import DefaultScheduleStatus, ScheduleDefinition

from dagster_project.jobs import nightly_refresh_job

nightly_refresh_schedule = ScheduleDefinition(
    name="nightly_refresh_schedule",
    job=nightly_refresh_job,
    cron_schedule="0 3 * * *",
    execution_timezone="Europe/Moscow",
    default_status=DefaultScheduleStatus.STOPPED,
    description="03:00 Moscow time: incremental scrape, curation and manifests.",
)
