"""Snapshot of every asset spec (key, group, deps, kinds, code version), so graph changes are deliberate.

Regenerate after an intended change with ``PETID_UPDATE_SNAPSHOTS=1 uv run pytest tests/test_asset_specs.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_specs.json"


def current_specs() -> list[dict]:
    from dagster_project.definitions import defs

    graph = defs.resolve_asset_graph()
    specs = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        specs.append(
            {
                "key": key.to_user_string(),
                "group": node.group_name,
                "deps": sorted(dep.to_user_string() for dep in node.parent_keys),
                "kinds": sorted(node.kinds),
                "code_version": node.code_version,
                "has_description": bool(node.description and node.description.strip()),
                "checks": sorted(check.name for check in node.check_keys),
            }
        )
    return specs


def test_asset_specs_match_snapshot() -> None:
    specs = current_specs()
    if os.environ.get("PETID_UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(specs, indent=2) + "\n")
        if not os.environ.get("PETID_UPDATE_SNAPSHOTS"):
            pytest.fail(f"wrote a new snapshot to {SNAPSHOT}: review and commit it")
    assert specs == json.loads(SNAPSHOT.read_text())


def test_every_asset_is_documented_grouped_and_versioned() -> None:
    for spec in current_specs():
        assert spec["group"] in {"ingest", "curation", "dataset", "model", "matching"}, spec
        assert spec["kinds"], spec
        assert spec["code_version"], spec
        assert spec["has_description"], spec


def test_loading_definitions_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys, dagster_project.definitions as d; "
        "heavy = [m for m in ('torch', 'timm', 'ultralytics', 'telethon', 'openvino') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_every_config_and_resource_field_is_described() -> None:
    """Run config and resource fields carry a description (the Dagster UI's launchpad shows it)."""
    from dagster import Config, ConfigurableResource

    import assets.curation
    import assets.dataset
    import assets.ingest
    import assets.model
    import dagster_project.local_site
    import dagster_project.resources

    modules = (assets.curation, assets.dataset, assets.ingest, assets.model, dagster_project.resources,
               dagster_project.local_site)
    classes = {cls for module in modules for cls in vars(module).values()
               if isinstance(cls, type) and issubclass(cls, (Config, ConfigurableResource))
               and cls.__module__ == module.__name__}
    assert len(classes) >= 12
    bare = [f"{cls.__name__}.{name}" for cls in classes for name, field in cls.model_fields.items()
            if not field.description and not (isinstance(field.annotation, type)
                                              and issubclass(field.annotation, ConfigurableResource))]
    assert not bare, bare
