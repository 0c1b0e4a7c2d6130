"""Shared fixtures. Tests never touch the network; ``../shared`` material is optional and skipped when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PETID_SHARED", REPO.parent / "shared")).resolve()

# Ultralytics writes a settings file and may try to reach its hub; keep both local and quiet.
os.environ.setdefault("YOLO_CONFIG_DIR", str(REPO / ".pytest_cache" / "ultralytics"))
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _shared_path(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"../shared material not available: {path} is absent (tests that need ../shared skip without it)")
    return path


@pytest.fixture
def shared_dir() -> Path:
    """The read-only ``../shared`` folder; the test is skipped with a reason when it is absent."""
    return _shared_path("")


@pytest.fixture
def pet911_pages() -> Path:
    return _shared_path("data/pet911_pages")


@pytest.fixture
def kennel_dev() -> Path:
    return _shared_path("data/kennel_dev")


@pytest.fixture
def oxford_pets() -> Path:
    return _shared_path("data/oxford_pets_sample")


@pytest.fixture
def yolo_model_dir() -> Path:
    return _shared_path("models/yolo11n_int8_openvino_model")
