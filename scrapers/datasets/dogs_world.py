"""Dogs-World ("Dogs of the World", CC0; dog identities from photos on the web).

Layout implemented: a flat ``images/`` folder and one JSON file per photo in ``metadata/``::

    ROOT/images/<file>.jpg
    ROOT/metadata/<hash>.json       {"path": "images/<file>.jpg", "identities": [{"identity": <label>, ...}, ...]}

``ROOT`` may also be the folder above it (the Kaggle download unpacks to ``archive/``). Sources read: the
dataset's format is not documented in any reference corpus available offline, so the layout is the one the
reporter of petid issue #13 saw in a real copy, cross-checked against a published reader of the same copy,
github.com/harwoon/for_mate ``ML/scripts/train_dinov2_projection.py`` (``read_archive``: it joins ``path`` to
ROOT, retries other image extensions when the listed file is absent, and reads ``identities[*].identity``).

Identity ``dogs-world:<identity label>`` (the dataset's own label, so ids do not depend on the folder given),
species ``dog``. A photo whose ``identities`` names several dogs is **skipped** and recorded (reason
``several animals``): the metadata gives no per-dog box (and the catalogue holds whole photos), so such a photo
cannot be any one dog's photo. That reader credits the photo to every dog it names; petid does not. A metadata
file with no identity, or that is not valid JSON, is skipped and recorded too. A listed image that is absent
(under every extension) stays in the catalogue for the validator to name.
"""

from __future__ import annotations

import json
from pathlib import Path

from scrapers.datasets._common import DatasetLayoutError, Imported, require_dir

SOURCE = "dogs-world"
_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".JPG", ".JPEG", ".PNG")


def _dataset_root(root: Path) -> Path:
    """``root`` if it holds ``metadata/``, else its single sub-folder that does (e.g. ``archive/``)."""
    if (root / "metadata").is_dir():
        return root
    inner = [p for p in sorted(root.iterdir()) if p.is_dir() and (p / "metadata").is_dir()]
    if len(inner) == 1:
        return inner[0]
    raise DatasetLayoutError(
        f"{SOURCE}: no metadata/ folder in {root} (expected images/ and metadata/<hash>.json, one file per photo"
        + (f"; found it in several sub-folders: {[p.name for p in inner]}" if inner else "") + ")")


def _image_path(root: Path, listed: str) -> Path:
    path = root / listed
    if path.is_file():
        return path
    for ext in _EXTS:
        candidate = path.with_suffix(ext)
        if candidate.is_file():
            return candidate
    return path


def load(root: Path) -> Imported:
    """One identity per identity label of the metadata; photos of several dogs are skipped and recorded."""
    root = _dataset_root(require_dir(Path(root), SOURCE))
    files = sorted((root / "metadata").glob("*.json"))
    if not files:
        raise DatasetLayoutError(f"{SOURCE}: {root / 'metadata'} holds no .json files")
    imported = Imported(SOURCE)
    photos: dict[str, set[Path]] = {}
    for meta in files:
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            imported.skip(meta, "unreadable metadata", str(exc))
            continue
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            imported.skip(meta, "unreadable metadata", "no 'path'")
            continue
        entries = data.get("identities") if isinstance(data.get("identities"), list) else []
        labels = sorted({str(e["identity"]).strip() for e in entries
                         if isinstance(e, dict) and e.get("identity") not in (None, "")} - {""})
        image = _image_path(root, data["path"])
        if not labels:
            imported.skip(image, "no identity", meta.name)
        elif len(labels) > 1:
            imported.skip(image, "several animals", f"{meta.name}: {', '.join(labels)}")
        else:
            photos.setdefault(labels[0], set()).add(image)
    if not photos:
        raise DatasetLayoutError(f"{SOURCE}: no metadata file in {root / 'metadata'} names exactly one dog "
                                 f"(skipped: {imported.skipped_counts()})")
    for label in sorted(photos, key=lambda x: (len(x), x)):
        imported.add(label, sorted(photos[label]), species="dog")
    return imported
