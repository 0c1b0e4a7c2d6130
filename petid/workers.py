"""The one multiprocessing context petid's worker pools use (DataLoaders, image process pools).

Dagster starts each launched run in a *spawned* process and sets ``spawn`` as the default start method, so every
worker would re-import torch/timm/Pillow from scratch (a 12-animal demo's training took 37 s instead of 13 s).
On Linux petid asks for ``fork`` explicitly: workers share the parent's imports. Elsewhere the platform default.
"""

from __future__ import annotations

import multiprocessing
import sys
from multiprocessing.context import BaseContext


def worker_context() -> BaseContext:
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
