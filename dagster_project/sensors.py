"""Sensors. The one sensor evaluates the assets' automation conditions (``dagster_project.automation``); it is
created stopped: turn it on in the UI (Automation tab) once the sources are configured."""

from dagster import AssetSelection, AutomationConditionSensorDefinition, DefaultSensorStatus

automation_sensor = AutomationConditionSensorDefinition(
    "petid_automation",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=60,
    description="Nightly ingest at 03:00 Moscow (on_cron), then curation → dataset → model → evaluation and search "
                "eagerly as their inputs change; blocking checks stop bad data before training and the index.",
)
