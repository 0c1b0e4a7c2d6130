"""Sensors. Created stopped: retrain and re-evaluate whenever the dataset splits are rematerialized."""

from dagster import AssetKey, DefaultSensorStatus, EventLogEntry, RunRequest, SensorEvaluationContext, asset_sensor

from dagster_project.jobs import train_evaluate_job


@asset_sensor(
    asset_key=AssetKey("dataset_splits"),
    job=train_evaluate_job,
    default_status=DefaultSensorStatus.STOPPED,
    description="New splits → train (reusing the model version when nothing changed) and evaluate.",
)
def retrain_on_new_splits(context: SensorEvaluationContext, asset_event: EventLogEntry) -> RunRequest:
    return RunRequest(run_key=context.cursor)
