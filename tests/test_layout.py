"""The required layout holds: libraries never import Dagster, and every library imports cheaply."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIBRARIES = ("scrapers", "curation", "training", "evaluation", "petid")
DAGSTER_FRONT_ENDS = {"petid/demo_cli.py"}  # `petid demo` / `petid ui` drive Dagster on purpose
HEAVY = {"torch", "timm", "ultralytics", "telethon", "openvino", "torchvision"}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at_module_level) for every import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, id(node) in top_level))
    return found


@pytest.mark.parametrize("library", LIBRARIES)
def test_libraries_never_import_dagster(library: str) -> None:
    offenders = [
        f"{path.relative_to(REPO)}: {module}"
        for path in (REPO / library).rglob("*.py")
        if str(path.relative_to(REPO)) not in DAGSTER_FRONT_ENDS
        for module, _ in _imports(path)
        if module.split(".")[0] == "dagster" or module.startswith("dagster_")
    ]
    assert not offenders, offenders


@pytest.mark.parametrize("package", ("assets", "dagster_project"))
def test_wiring_keeps_heavy_imports_lazy(package: str) -> None:
    offenders = [
        f"{path.relative_to(REPO)}: {module}"
        for path in (REPO / package).rglob("*.py")
        for module, top in _imports(path)
        if top and module.split(".")[0] in HEAVY
    ]
    assert not offenders, offenders


def test_required_layout_exists() -> None:
    for name in ("pyproject.toml", "uv.lock", "workspace.yaml", "README.md", ".ci/run", "bench", "tests"):
        assert (REPO / name).exists(), name


APP_MODULES = ("petid.cli", "petid.demo_cli", "petid.sample")  # the command line, the demo and the sample world


@pytest.mark.parametrize("package", ("scrapers", "curation", "training", "evaluation", "assets"))
def test_libraries_and_assets_never_import_the_app_or_the_sample_world(package: str) -> None:
    offenders = [
        f"{path.relative_to(REPO)}: {module}"
        for path in (REPO / package).rglob("*.py")
        for module, _ in _imports(path)
        if module.startswith(APP_MODULES)
    ]
    assert not offenders, offenders


FOUNDATION = ("errors", "records", "paths", "settings", "stats", "tables")


@pytest.mark.parametrize("module", FOUNDATION)
def test_the_foundation_imports_nothing_above_it(module: str) -> None:
    above = ("scrapers", "curation", "training", "evaluation", "assets", "dagster_project", "dagster", "bench")
    offenders = [name for name, _ in _imports(REPO / "petid" / f"{module}.py")
                 if name.split(".")[0] in above or (name.startswith("petid.") and name.split(".")[1] not in FOUNDATION)]
    assert not offenders, offenders


DEPLOYMENT_MODULES = ("dagster_project.deployments", "dagster_project.local_site", "dagster_project.definitions")


def test_assets_never_know_which_deployment_runs_them() -> None:
    """Asset bodies see only resource types; the resource sets (and the local sample site) are chosen elsewhere."""
    offenders = [
        f"{path.relative_to(REPO)}: {module}"
        for path in (REPO / "assets").rglob("*.py")
        for module, _ in _imports(path)
        if module.startswith(DEPLOYMENT_MODULES)
    ]
    offenders += [f"{path.relative_to(REPO)} mentions the sample" for path in (REPO / "assets").rglob("*.py")
                  if "sample" in path.read_text().lower()]
    assert not offenders, offenders


def test_only_the_demo_deployment_reaches_the_sample_world() -> None:
    allowed = {"dagster_project/local_site.py"}
    offenders = [
        f"{path.relative_to(REPO)}: {module}"
        for path in (REPO / "dagster_project").rglob("*.py")
        if str(path.relative_to(REPO)) not in allowed
        for module, _ in _imports(path)
        if module.startswith("petid.sample")
    ]
    assert not offenders, offenders
