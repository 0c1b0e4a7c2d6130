"""Declarative cadence, per asset group: what triggers a materialization and how fresh each layer must be.

- ingest: ``on_cron`` at 03:00 Moscow (``schedules.NIGHTLY_CRON``); freshness: materialized between 03:00 and 06:00.
- curation, dataset, model: ``eager`` — as soon as an upstream asset has a *new data version*. Source assets
  report content-based data versions, so a night with nothing new changes nothing downstream.
Blocking asset checks (manifest paths, split disjointness/coverage, the promotion gate) stop a run before training
and the search index, whatever triggered it.
"""

from dagster import AssetSpec, AutomationCondition, Definitions, FreshnessPolicy, map_asset_specs

from dagster_project import schedules

CONDITIONS: dict[str, AutomationCondition] = {
    "ingest": AutomationCondition.on_cron(schedules.NIGHTLY_CRON, schedules.TIMEZONE),
    "curation": AutomationCondition.eager(),
    "dataset": AutomationCondition.eager(),
    "model": AutomationCondition.eager(),
    "matching": AutomationCondition.eager(),
}

FRESHNESS: dict[str, FreshnessPolicy] = {
    "ingest": FreshnessPolicy.cron(deadline_cron=schedules.INGEST_DEADLINE_CRON,
                                   lower_bound_delta=schedules.INGEST_WINDOW, timezone=schedules.TIMEZONE),
    "curation": FreshnessPolicy.time_window(fail_window=schedules.CURATED_FAIL_AFTER,
                                            warn_window=schedules.CURATED_WARN_AFTER),
    "dataset": FreshnessPolicy.time_window(fail_window=schedules.CURATED_FAIL_AFTER,
                                           warn_window=schedules.CURATED_WARN_AFTER),
    "model": FreshnessPolicy.time_window(fail_window=schedules.MODEL_FAIL_AFTER,
                                         warn_window=schedules.MODEL_WARN_AFTER),
    "matching": FreshnessPolicy.time_window(fail_window=schedules.CURATED_FAIL_AFTER,
                                            warn_window=schedules.CURATED_WARN_AFTER),
}


def with_cadence(spec: AssetSpec) -> AssetSpec:
    """``spec`` with its group's automation condition and freshness policy."""
    group = spec.group_name or ""
    return spec.replace_attributes(automation_condition=CONDITIONS[group], freshness_policy=FRESHNESS[group])


def apply_cadence(*group_defs: Definitions) -> Definitions:
    """The asset groups' definitions merged, every asset spec given its cadence (checks unchanged)."""
    merged = Definitions.merge(*group_defs)
    return Definitions(assets=map_asset_specs(with_cadence, list(merged.assets or [])),
                       asset_checks=list(merged.asset_checks or []))
