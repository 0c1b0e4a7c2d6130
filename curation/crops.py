"""Animal crops from an Ultralytics YOLO detector (COCO cat/dog only).

The detector is optional: ``crop_images(images, None, ...)`` records every image as ``disabled``. With a detector,
each image gets the largest confident cat/dog box whose species agrees with the listing (when the listing says),
a margin around it, and a content-addressed JPEG crop. Every outcome is recorded in ``crop_status``:

``cropped``           a box was found and the crop written (``crop_path``)
``no_detection``      no confident cat/dog: the full image stands (``crop_path`` null)
``species_mismatch``  only the other species was found (box of the best one recorded, no crop)
``too_small``         the chosen box is narrower than ``min_box_side`` pixels (box recorded, no crop)
``disabled``          no detector configured

Reruns cost what is new (``curation.cache``, records in ``out_dir/.petid-cache/``): a detector with a ``cache_key``
(a string naming the model and every setting that changes its output; ``YoloDetector`` has one) has its detections
recorded under the sha256 of each image and that key, and not asked again about the same image; a crop is recorded
under the image's sha256, the box and the margin, and not cut again while its file holds the recorded bytes.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
from PIL import Image, ImageOps

from curation.cache import Cache, sha_key, text_key, with_work_stats
from curation.inputs import DEFAULT_MAX_BYTES
from petid.errors import UserError
from petid.paths import atomic_write_bytes, content_path, sha256_bytes, sha256_file

COCO_CLASSES = {15: "cat", 16: "dog"}  # COCO ids of the only classes we keep
CROP_STATUSES = ("cropped", "no_detection", "species_mismatch", "too_small", "disabled")
CROP_QUALITY = 95

CROPS_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("bbox", pa.list_(pa.float32())),  # x1, y1, x2, y2 in original pixels (detector box, no margin)
        pa.field("crop_path", pa.string()),
        pa.field("det_species", pa.string()),
        pa.field("det_conf", pa.float32()),
        pa.field("crop_status", pa.string(), nullable=False),
    ]
)


class CropError(UserError, RuntimeError):
    """The detector could not be loaded, or an image could not be read for detection or cropping."""


@dataclass(frozen=True)
class Detection:
    """One cat/dog box in original-image pixel coordinates."""

    species: str
    conf: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)


class Detector(Protocol):
    """Anything with ``detect(paths) -> list[list[Detection]]`` (one list per path, in order)."""

    def detect(self, paths: Sequence[str]) -> list[list[Detection]]: ...


class YoloDetector:
    """Batched Ultralytics YOLO cat/dog detector, loaded lazily on first use.

    ``weights``: ``yolo11n.pt`` (a hub name, downloaded by Ultralytics when online), a local ``.pt``/``.onnx`` file,
    or an exported model folder such as ``yolo11n_int8_openvino_model/`` (offline).
    Images are decoded at reduced size (JPEG draft mode, never below ``imgsz``) and boxes are scaled back to
    original pixels.
    """

    def __init__(
        self, weights: str = "yolo11n.pt", conf: float = 0.25, imgsz: int = 640, batch: int = 16, device: str = "cpu"
    ) -> None:
        self.weights = str(weights)
        self.conf = conf
        self.imgsz = imgsz
        self.batch = max(1, int(batch))
        self.device = device
        self._model: Any = None
        self._cache_key: str | None = None

    @property
    def cache_key(self) -> str:
        """What its detections depend on: the weights (their content when local), thresholds, sizes, device and the
        Ultralytics version; ``crop_images`` reuses recorded detections under the same key."""
        if self._cache_key is None:
            self._cache_key = json.dumps({"detector": "ultralytics-yolo", "weights": _weights_identity(self.weights),
                                          "conf": self.conf, "imgsz": self.imgsz, "batch": self.batch,
                                          "device": self.device, "ultralytics": _version("ultralytics")},
                                         sort_keys=True)
        return self._cache_key

    @property
    def model(self) -> Any:
        if self._model is None:
            with process_threads_kept():
                self._model = _load_yolo(self.weights)
        return self._model

    def detect(self, paths: Sequence[str]) -> list[list[Detection]]:
        """Cat/dog detections per image (any order within an image), for each path in order."""
        model = self.model  # load (and fail) before decoding anything
        out: list[list[Detection]] = []
        for start in range(0, len(paths), self.batch):
            chunk = list(paths[start : start + self.batch])
            arrays, scales = zip(*(_load_for_detection(p, self.imgsz) for p in chunk), strict=True)
            with process_threads_kept():
                results = model.predict(
                    list(arrays),
                    conf=self.conf,
                    imgsz=self.imgsz,
                    classes=sorted(COCO_CLASSES),
                    batch=self.batch,
                    device=self.device,
                    verbose=False,
                )
            for result, (sx, sy) in zip(results, scales, strict=True):
                boxes = result.boxes
                xyxy = boxes.xyxy.cpu().numpy().astype(float).tolist() if len(boxes) else []
                cls = boxes.cls.cpu().numpy().astype(int).tolist() if len(boxes) else []
                confs = boxes.conf.cpu().numpy().astype(float).tolist() if len(boxes) else []
                out.append(
                    [
                        Detection(COCO_CLASSES[c], float(p), (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy))
                        for b, c, p in zip(xyxy, cls, confs, strict=True)
                        if c in COCO_CLASSES
                    ]
                )
        return out


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _weights_identity(weights: str) -> str:
    """The sha256 of local weights (a file, or every file of an exported model folder); else the hub name."""
    path = Path(weights).expanduser()
    if path.is_file():
        return sha256_file(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return sha256_bytes("".join(f"{p.relative_to(path)}:{sha256_file(p)}\n" for p in files).encode())
    return weights


@contextmanager
def process_threads_kept() -> Iterator[None]:
    """Undo what Ultralytics does to the whole process: importing it sets ``OMP_NUM_THREADS=1`` when unset (every
    later subprocess, a Pipes training run among them, would then train on one thread) and its device selection
    calls ``torch.set_num_threads(min(8, cores - 1))`` (training later in the same run: one thread on 2 cores)."""
    import torch

    threads, omp = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = omp


def _load_yolo(weights: str) -> Any:
    from ultralytics import (
        YOLO,  # heavy: imported only when a detector is actually used
    )

    _undo_pil_patch()
    path = Path(weights).expanduser()
    if path.exists():
        return YOLO(str(path), task="detect")
    if os.sep in weights or weights.endswith(("_model", "/")):
        raise CropError(f"detector weights not found: {weights} (a local .pt file or an exported model folder)")
    try:
        return YOLO(weights, task="detect")  # a hub name such as yolo11n.pt: needs the network the first time
    except Exception as exc:  # noqa: BLE001 - Ultralytics raises many kinds when offline
        raise CropError(f"could not load detector {weights!r} (offline? use a local file or folder): {exc}") from exc


def _undo_pil_patch() -> None:
    """Importing ultralytics replaces ``PIL.Image.open`` process-wide with a wrapper that, on any unidentifiable
    file, tries to pip-install ``pi-heif`` (and raises ModuleNotFoundError offline). That would turn every
    rejected non-image elsewhere in the pipeline into a crash or an install, so put Pillow's opener back."""
    try:
        from ultralytics.utils import patches
    except ImportError:  # a future ultralytics without the patch
        return
    original = getattr(patches, "_image_open", None)
    if original is not None and Image.open is getattr(patches, "image_open", None):
        Image.open = original


_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that transpose width and height


def _load_for_detection(path: str, imgsz: int) -> tuple[np.ndarray, tuple[float, float]]:
    """BGR array at reduced resolution (>= imgsz on the short side when possible) and the factors back to
    original, EXIF-oriented pixels."""
    try:
        with Image.open(path) as img:
            full_w, full_h = img.size
            orientation = img.getexif().get(0x0112, 1)
            img.draft("RGB", (imgsz, imgsz))  # JPEG only: decode at 1/2, 1/4, 1/8 scale, never below imgsz
            small = ImageOps.exif_transpose(img.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise CropError(f"cannot read image for detection: {path}: {exc}") from exc
    if orientation in _SWAPS_AXES:
        full_w, full_h = full_h, full_w
    sx, sy = full_w / small.width, full_h / small.height
    return np.ascontiguousarray(np.asarray(small)[:, :, ::-1]), (sx, sy)


def choose_detection(
    detections: Sequence[Detection], listing_species: str | None, min_conf: float
) -> tuple[Detection | None, str]:
    """The largest confident detection agreeing with the listing species, and the status it leads to
    (``cropped`` before the size check, ``no_detection`` or ``species_mismatch``)."""
    confident = [d for d in detections if d.conf >= min_conf]
    if not confident:
        return None, "no_detection"
    if listing_species is not None:
        agreeing = [d for d in confident if d.species == listing_species]
        if not agreeing:
            return max(confident, key=lambda d: (d.area, d.conf)), "species_mismatch"
        confident = agreeing
    return max(confident, key=lambda d: (d.area, d.conf)), "cropped"


def crop_box(box: Sequence[float], width: int, height: int, margin: float) -> tuple[int, int, int, int]:
    """Integer crop rectangle: the box grown by ``margin`` of its size on every side, clipped to the image."""
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, int(np.floor(x1 - mx))), max(0, int(np.floor(y1 - my)))
    right, bottom = min(width, int(np.ceil(x2 + mx))), min(height, int(np.ceil(y2 + my)))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def _write_crop(path: str, box: Sequence[float], margin: float, out_dir: Path) -> str:
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img).convert("RGB")
            region = img.crop(crop_box(box, img.width, img.height, margin))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise CropError(f"cannot read image for cropping: {path}: {exc}") from exc
    buf = io.BytesIO()
    region.save(buf, format="JPEG", quality=CROP_QUALITY)
    data = buf.getvalue()
    crop_path = content_path(out_dir, sha256_bytes(data), ".jpg")
    try:
        intact = crop_path.stat().st_size == len(data)  # a truncated earlier copy is rewritten, not trusted
    except FileNotFoundError:
        intact = False
    if not intact:
        atomic_write_bytes(crop_path, data)
    return str(crop_path)


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def crop_images(
    images: pa.Table,
    detector: Detector | None,
    out_dir: str | os.PathLike[str],
    margin: float = 0.1,
    min_box_side: int = 32,
    min_conf: float = 0.25,
    chunk_size: int = 256,
) -> pa.Table:
    """Detect and crop the animal in every image of ``images`` (needs ``image_id``, ``path``; ``species`` when
    present is the listing's). Returns one row per input row in ``CROPS_SCHEMA``; see the module doc for statuses.
    Images are processed in chunks so memory stays bounded; crops are content-addressed under ``out_dir``. The
    schema metadata ``petid.work`` counts the images the detector saw (``detected``) and those whose recorded
    detections were reused (``reused``)."""
    missing = {"image_id", "path"} - set(images.column_names)
    if missing:
        raise ValueError(f"crop_images: images table lacks column(s) {sorted(missing)}")
    image_ids = images.column("image_id").to_pylist()
    n = len(image_ids)
    if detector is None:
        return pa.table(
            {
                "image_id": image_ids,
                "bbox": pa.nulls(n, pa.list_(pa.float32())),
                "crop_path": pa.nulls(n, pa.string()),
                "det_species": pa.nulls(n, pa.string()),
                "det_conf": pa.nulls(n, pa.float32()),
                "crop_status": ["disabled"] * n,
            },
            schema=CROPS_SCHEMA,
        )
    paths = images.column("path").to_pylist()
    species = images.column("species").to_pylist() if "species" in images.column_names else [None] * n
    out = Path(out_dir)
    cache = Cache.beside(out)
    shas = [cache.content_sha(p, DEFAULT_MAX_BYTES) if isinstance(p, str) else None for p in paths]
    decisions = _Decisions(cache, detector, shas)
    rows: dict[str, list[Any]] = {name: [] for name in CROPS_SCHEMA.names}
    try:
        for chunk in _chunks(n, chunk_size):
            for i, detections in zip(chunk, decisions.detect(detector, chunk, paths), strict=True):
                best, status = choose_detection(detections, species[i], min_conf)
                crop_path = None
                if status == "cropped" and min(best.width, best.height) < min_box_side:
                    status = "too_small"
                if status == "cropped":
                    crop_path = _crop(paths[i], shas[i], best.box, margin, out, cache)
                rows["image_id"].append(image_ids[i])
                rows["bbox"].append(list(best.box) if best else None)
                rows["crop_path"].append(crop_path)
                rows["det_species"].append(best.species if best else None)
                rows["det_conf"].append(best.conf if best else None)
                rows["crop_status"].append(status)
    finally:
        cache.flush()
    return with_work_stats(pa.Table.from_pydict(rows, schema=CROPS_SCHEMA), decisions.work)


class _Decisions:
    """The detections of each image: recorded ones (same image sha256, same ``cache_key``), else the detector's."""

    def __init__(self, cache: Cache, detector: Detector, shas: list[str | None]) -> None:
        key = getattr(detector, "cache_key", None)
        self.table = cache.table("detections", {"detector": key}) if isinstance(key, str) else None
        self.shas = shas
        self.work = {"detected": 0, "reused": 0}

    def detect(self, detector: Detector, chunk: range, paths: list[str]) -> list[list[Detection]]:
        found: list[list[Detection] | None] = [self._recorded(i) for i in chunk]
        todo = [k for k, f in enumerate(found) if f is None]
        if todo:
            fresh = detector.detect([paths[chunk[k]] for k in todo])
            if len(fresh) != len(todo):
                raise CropError(f"detector returned {len(fresh)} results for {len(todo)} images")
            for k, detections in zip(todo, fresh, strict=True):
                found[k] = detections
                self._record(chunk[k], detections)
        self.work["detected"] += len(todo)
        self.work["reused"] += len(chunk) - len(todo)
        return found  # type: ignore[return-value]

    def _recorded(self, i: int) -> list[Detection] | None:
        if self.table is None or self.shas[i] is None:
            return None
        record = self.table.get(sha_key(self.shas[i]))
        if record is None:
            return None
        try:
            listed = json.loads(record["detections"])
            return [Detection(s, float(c), tuple(float(v) for v in box)) for s, c, box in listed]
        except (ValueError, TypeError):  # not what we write: ask the detector again
            return None

    def _record(self, i: int, detections: list[Detection]) -> None:
        if self.table is not None and self.shas[i] is not None:
            encoded = json.dumps([[d.species, d.conf, list(d.box)] for d in detections])
            self.table.add(sha_key(self.shas[i]), detections=encoded)


def _crop(path: str, sha: str | None, box: Sequence[float], margin: float, out_dir: Path, cache: Cache) -> str:
    """The crop of ``box`` (grown by ``margin``) from ``path``: the recorded one while its file holds the recorded
    bytes, else cut and written (and recorded)."""
    key = text_key(json.dumps([sha, [float(v) for v in box], margin, CROP_QUALITY, Image.__version__])) if sha else None
    record = cache.table("crops").get(key) if key else None
    if record is not None:
        crop_sha = record["crop_sha256"].hex()
        existing = content_path(out_dir, crop_sha, ".jpg")
        if cache.content_sha(str(existing), DEFAULT_MAX_BYTES) == crop_sha:
            return str(existing)
    written = _write_crop(path, box, margin, out_dir)
    if key is not None:
        cache.table("crops").add(key, crop_sha256=bytes.fromhex(Path(written).stem))
    return written
