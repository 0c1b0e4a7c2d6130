"""The versioned model registry: ``<root>/<version>/`` directories that are never overwritten, plus
``<root>/aliases.json`` (``latest``, a promotable ``production``, any other name).

A version id is a content hash of the training manifest (sorted photo sha256-or-path, identity, split rows), the
training config and ``CODE_VERSION``. Per version: ``weights.safetensors``, ``config.json``, ``label_map.json``,
``data_manifest_hash``, ``git_commit`` (text; ``null`` when not in a git checkout), ``curves.png``, ``metrics.json``.
Loading reads safetensors only: nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from petid.errors import UserError

CODE_VERSION = "training-3"  # bump when a code change alters what a given manifest + config trains into
ALIASES_FILE = "aliases.json"
WORK_DIR = ".work"  # resumable checkpoints, keyed by version id
REQUIRED_FILES = ("weights.safetensors", "config.json", "label_map.json", "metrics.json")


class ModelNotFoundError(UserError, LookupError):
    """A model reference (alias, version id or path) does not resolve to a registered version."""


class VersionExistsError(UserError, FileExistsError):
    """A version directory already exists; versions are never overwritten."""


def manifest_hash(frame: pd.DataFrame) -> str:
    """sha256 over the sorted ``(sha256 or path, identity_id, split)`` rows of a training frame."""
    key = frame["sha256"].astype(str) if "sha256" in frame else frame["path"].astype(str)
    split = frame["split"].astype(str) if "split" in frame else pd.Series("", index=frame.index)
    rows = sorted(zip(key, frame["identity_id"].astype(str), split))
    digest = hashlib.sha256()
    for row in rows:
        digest.update(("\t".join(row) + "\n").encode())
    return digest.hexdigest()


def version_id(data_hash: str, config: Mapping[str, Any], code_version: str = CODE_VERSION) -> str:
    """16-hex content hash of (manifest hash, config dict, code version)."""
    payload = json.dumps({"data": data_hash, "config": dict(config), "code": code_version}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The current git commit of the code, or None outside a git checkout / without git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent, capture_output=True,
                             text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


class ModelRegistry:
    """Registry rooted at ``root`` (``<PETID_HOME>/models`` by default in the assets)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # -- versions ---------------------------------------------------------------------------------------------
    def path(self, version: str) -> Path:
        return self.root / version

    def exists(self, version: str) -> bool:
        return all((self.root / version / name).is_file() for name in REQUIRED_FILES)

    def versions(self) -> list[str]:
        """Registered version ids, oldest first (by ``metrics.json`` mtime)."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".") and self.exists(p.name)]
        return [p.name for p in sorted(found, key=lambda p: ((p / "metrics.json").stat().st_mtime, p.name))]

    def next_forced_id(self, base: str) -> str:
        """``<base>-r<n>`` with the smallest n ≥ 1 not yet taken (``force=True`` retrains never overwrite)."""
        n = 1
        while (self.root / f"{base}-r{n}").exists() or (self.work_dir(f"{base}-r{n}")).exists():
            n += 1
        return f"{base}-r{n}"

    def work_dir(self, version: str) -> Path:
        """Scratch directory for the resumable checkpoints of ``version`` while it trains."""
        return self.root / WORK_DIR / version

    def register(self, version: str, state_dict: Mapping[str, Any], *, config: Mapping[str, Any],
                 label_map: Mapping[str, int], data_hash: str, metrics: Mapping[str, Any],
                 curves_png: bytes | None = None) -> Path:
        """Write a complete version directory atomically (staged, then renamed). Raises VersionExistsError."""
        from safetensors.torch import save_file

        final = self.root / version
        if final.exists():
            raise VersionExistsError(f"model version {version} already exists at {final}; versions are never overwritten")
        stage = self.root / WORK_DIR / f"stage-{version}"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
        save_file(tensors, str(stage / "weights.safetensors"), metadata={"version": version})
        (stage / "config.json").write_text(json.dumps(dict(config), indent=2, sort_keys=True))
        (stage / "label_map.json").write_text(json.dumps(dict(label_map), indent=2, sort_keys=True))
        (stage / "data_manifest_hash").write_text(data_hash + "\n")
        (stage / "git_commit").write_text(f"{git_commit() or 'null'}\n")
        (stage / "metrics.json").write_text(json.dumps(dict(metrics), indent=2, sort_keys=True, default=str))
        if curves_png is not None:
            (stage / "curves.png").write_bytes(curves_png)
        os.replace(stage, final)
        return final

    def load_state_dict(self, ref: str | os.PathLike[str]) -> dict[str, Any]:
        """Weights of a version (safetensors; no unpickling)."""
        from safetensors.torch import load_file

        return load_file(str(self.resolve(ref) / "weights.safetensors"))

    def config(self, ref: str | os.PathLike[str]) -> dict[str, Any]:
        return json.loads((self.resolve(ref) / "config.json").read_text())

    def metrics(self, ref: str | os.PathLike[str]) -> dict[str, Any]:
        return json.loads((self.resolve(ref) / "metrics.json").read_text())

    # -- aliases ----------------------------------------------------------------------------------------------
    def aliases(self) -> dict[str, str]:
        """``aliases.json`` as a dict; a corrupt file raises ModelNotFoundError saying how to repair it."""
        path = self.root / ALIASES_FILE
        if not path.is_file():
            return {}
        try:
            aliases = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelNotFoundError(f"{path} is not valid JSON ({exc}); fix or delete it, then "
                                     "`petid model-promote VERSION` to recreate the aliases") from exc
        if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
            raise ModelNotFoundError(f"{path} must map alias names to version ids; fix or delete it")
        return aliases

    def set_alias(self, name: str, version: str) -> None:
        """Point alias ``name`` (``latest``, ``production``, ...) at a registered version (atomic rewrite)."""
        from petid.paths import atomic_write_bytes

        version = self.resolve(version).name
        if not name or self.exists(name):
            raise ValueError(f"invalid alias name {name!r}")
        aliases = {**self.aliases(), name: version}
        atomic_write_bytes(self.root / ALIASES_FILE, json.dumps(aliases, indent=2, sort_keys=True).encode())

    def promote(self, ref: str, alias: str = "production") -> str:
        """Point ``production`` (or ``alias``) at the version ``ref`` resolves to; returns the version id."""
        version = self.resolve(ref).name
        self.set_alias(alias, version)
        return version

    def resolve(self, ref: str | os.PathLike[str]) -> Path:
        """Directory of the version ``ref`` names: an alias, a version id, or a path to a version directory."""
        ref_str = str(ref)
        aliases = self.aliases()
        seen = [ref_str]
        while ref_str in aliases:  # an alias may name another alias; a cycle is an error, not a recursion
            ref_str = aliases[ref_str]
            if ref_str in seen:
                raise ModelNotFoundError(f"alias cycle in {self.root / ALIASES_FILE}: {' -> '.join(seen + [ref_str])}")
            seen.append(ref_str)
        if self.exists(ref_str) and "/" not in ref_str:
            return self.root / ref_str
        path = Path(ref_str)
        if path.is_dir() and all((path / name).is_file() for name in REQUIRED_FILES):
            return path
        known = ", ".join(sorted(aliases)) or "none"
        raise ModelNotFoundError(f"model {ref_str!r} is not an alias ({known}), a version in {self.root} or a version dir")

    # -- sharing between machines (petid.objectstore) -----------------------------------------------------------
    def publish(self, ref: str | os.PathLike[str], store: Any, prefix: str = "models") -> str:
        """Upload the version ``ref`` resolves to as ``<store>/<prefix>/<version>/`` with its manifest (every file's
        sha256), written last; publishing the same version again changes nothing. Returns the version id."""
        path = self.resolve(ref)
        store.put_tree(path, f"{prefix}/{path.name}")
        return path.name

    def fetch(self, version: str, store: Any, prefix: str = "models") -> Path:
        """The version ``version`` in this registry, downloaded from ``store`` first when it is not here: staged under
        ``.work``, every file checked against the published sha256 (an altered file is refused with
        ``petid.objectstore.IntegrityError``), then renamed into place. Returns its directory."""
        import uuid

        if "/" in version or version.startswith(".") or not version:
            raise ModelNotFoundError(f"invalid model version {version!r}")
        if self.exists(version):
            return self.root / version
        stage = self.root / WORK_DIR / f"fetch-{version}-{uuid.uuid4().hex[:8]}"
        try:
            try:
                store.get_tree(f"{prefix}/{version}", stage)
            except LookupError as exc:  # petid.objectstore.ObjectNotFoundError: not (completely) published
                raise ModelNotFoundError(f"model version {version} cannot be fetched: {exc}") from None
            missing = [name for name in REQUIRED_FILES if not (stage / name).is_file()]
            if missing:
                raise ModelNotFoundError(f"{store.url_for(f'{prefix}/{version}')} is not a model version (no "
                                         f"{', '.join(missing)})")
            try:
                os.replace(stage, self.root / version)
            except OSError:
                if not self.exists(version):  # else another process fetched it first: same content, keep theirs
                    raise
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return self.root / version
