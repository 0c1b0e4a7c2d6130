"""Sensors, created stopped (turn them on in the UI once the sources are configured): ``petid_automation``
evaluates the assets' automation conditions (``dagster_project.automation``); ``match_alerts`` posts new lost ↔ found
candidates to a webhook."""

import json

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from dagster_project.resources import AlertsResource, StorageResource

automation_sensor = AutomationConditionSensorDefinition(
    "petid_automation",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=60,
    description="Nightly ingest at 03:00 Moscow (on_cron), then curation → dataset → model → evaluation and search "
                "eagerly as their inputs change; blocking checks stop bad data before training and the index.",
)


MAX_REMEMBERED = 5000  # pair ids already posted, kept in the cursor


@sensor(name="match_alerts", default_status=DefaultSensorStatus.STOPPED, minimum_interval_seconds=60,
        description="Posts new match candidates at or above alerts.min_score to alerts.webhook_url (JSON), once each.")
def match_alerts(context: SensorEvaluationContext, alerts: AlertsResource, storage: StorageResource) -> SkipReason:
    """Reads the latest ``match_candidates`` materialization; a failing webhook keeps the cursor (retried next
    tick), so no alert is lost."""
    import pyarrow.parquet as pq

    from evaluation.alerts import AlertError, alert_rows, post_alerts

    if not alerts.webhook_url:
        return SkipReason("no webhook configured (set PETID_ALERT_WEBHOOK)")
    records = context.instance.fetch_materializations(AssetKey("match_candidates"), limit=1).records
    state = json.loads(context.cursor) if context.cursor else {"storage_id": None, "sent": []}
    if not records or records[0].storage_id == state["storage_id"]:
        return SkipReason("no new match_candidates materialization")
    rows = alert_rows(pq.read_table(storage.layout.table("match_candidates")), alerts.min_score, state["sent"])
    if rows:
        try:
            post_alerts(alerts.webhook_url, rows, timeout_s=alerts.timeout_s)
        except AlertError as exc:
            return SkipReason(f"{exc}; will retry")
    sent = (state["sent"] + [r["pair_id"] for r in rows])[-MAX_REMEMBERED:]
    context.update_cursor(json.dumps({"storage_id": records[0].storage_id, "sent": sent}))
    return SkipReason(f"posted {len(rows)} candidate(s)" if rows else "no new candidate above the threshold")
