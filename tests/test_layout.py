"""The required layout holds: libraries never import Dagster, and every library imports cheaply."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIBRARIES = ("scrapers", "curation", "training", "evaluation", "petid", "petid_sample")
DAGSTER_FRONT_ENDS = {"petid_app/demo.py"}  # `petid demo` / `petid ui` drive Dagster on purpose
# The training process's end of Dagster Pipes may import `dagster_pipes` (the dependency-free protocol half, not
# the orchestrator) and nothing else of Dagster; every other library module stays Dagster-free.
PIPES_ENTRY_POINTS = {"training/pipes_entry.py": {"dagster_pipes"}}
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
        if (module.split(".")[0] == "dagster" or module.startswith("dagster_"))
        and module not in PIPES_ENTRY_POINTS.get(str(path.relative_to(REPO)), set())
    ]
    assert not offenders, offenders


def test_the_pipes_entry_point_imports_only_dagster_pipes() -> None:
    for relative, allowed in PIPES_ENTRY_POINTS.items():
        dagster_imports = {module for module, _ in _imports(REPO / relative)
                           if module.split(".")[0] == "dagster" or module.startswith("dagster_")}
        assert dagster_imports == allowed, (relative, dagster_imports)  # used, and nothing more


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


# Layers, bottom to top: a package imports only its own layer and those below (README, "Layout"). Training and
# evaluation are peers: the promotion gate scores with the report's own code; evaluation loads trained models.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("petid",),                          # foundation: errors, records, paths, settings, stats, tables
    ("scrapers",),
    ("curation",),
    ("training", "evaluation"),
    ("assets", "dagster_project"),       # Dagster wiring
    ("petid_app",),                      # the command line, the demo, the UI launcher
)
FIRST_PARTY = {pkg for layer in LAYERS for pkg in layer} | {"petid_sample", "bench", "tests"}
SAMPLE_USERS = {"petid_app", "petid_sample"}  # plus dagster_project/local_site.py (the demo deployment)


def _layer(package: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


@pytest.mark.parametrize("package", [pkg for layer in LAYERS for pkg in layer])
def test_imports_only_run_downwards(package: str) -> None:
    offenders = [
        f"{path.relative_to(REPO)}: {module}"
        for path in (REPO / package).rglob("*.py")
        for module, _ in _imports(path)
        if (top := module.split(".")[0]) in FIRST_PARTY and top != "petid_sample"
        and (top in ("bench", "tests") or _layer(top) > _layer(package))
    ]
    assert not offenders, offenders


@pytest.mark.parametrize("package", ("petid", "scrapers", "curation", "training", "evaluation", "assets",
                                     "dagster_project"))
def test_only_the_app_the_demo_deployment_and_tests_use_the_sample_world(package: str) -> None:
    allowed = {"dagster_project/local_site.py"}
    offenders = [
        f"{path.relative_to(REPO)}: {module}"
        for path in (REPO / package).rglob("*.py")
        if str(path.relative_to(REPO)) not in allowed
        for module, _ in _imports(path)
        if module.split(".")[0] == "petid_sample"
    ]
    assert not offenders, offenders


def test_the_sample_world_sits_beside_the_libraries_not_above_them() -> None:
    offenders = [f"{path.relative_to(REPO)}: {module}" for path in (REPO / "petid_sample").rglob("*.py")
                 for module, _ in _imports(path) if module.split(".")[0] in {"assets", "dagster_project", "petid_app",
                                                                              "dagster"}]
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
