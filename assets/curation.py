"""Curation group: decode/validate/convert, perceptual hashes, deduplication, optional animal crops."""


import os
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetExecutionContext,
    AssetOut,
    Config,
    Definitions,
    MaterializeResult,
    asset,
    multi_asset,
)
from pydantic import Field

from assets._images import identity_rows, photo_grid
from assets._metadata import counts, preview, records_table
from dagster_project.resources import DetectorResource, StorageResource
from petid.records import CATALOGUE_SCHEMA


class ImageConfig(Config):
    """Run config for decoding and conversion (``image_hashes`` uses it to convert a damaged file again)."""

    jpeg_quality: int = Field(default=90, description="JPEG quality of curated images.")
    min_side: int = Field(default=64, description="Images with a shorter side are rejected as too small.")
    max_pixels: int = Field(default=50_000_000, description="Larger images are rejected as decompression bombs.")
    workers: int = Field(default=0, description="Decoding processes; 0 = min(4, CPUs).")

    def options(self):
        from curation.images import ImageOptions

        return ImageOptions(jpeg_quality=self.jpeg_quality, min_side=self.min_side, max_pixels=self.max_pixels)

    def worker_count(self) -> int:
        return self.workers or max(1, min(4, os.cpu_count() or 1))


class DedupConfig(Config):
    """Run config for deduplication."""

    threshold: int = Field(default=8, description="Near duplicates: pHash and dHash within this many Hamming bits.")
    policy: Literal["flag", "drop", "merge"] = Field(
        default="flag", description="Cross-identity duplicates: flag (report), drop (both photos) or merge.")


OWNERS = ["team:petid-data"]
PREVIEW_PAIRS = 8  # duplicate pairs / crops shown as pictures


def _out(description: str, kinds: set[str] | None = None) -> AssetOut:
    return AssetOut(group_name="curation", kinds=kinds or {"python"}, code_version="1", is_required=True,
                    description=description, owners=OWNERS)


@multi_asset(
    outs={
        "images": _out("Every ingested photo decoded, EXIF-oriented, converted to RGB JPEG under a content-addressed "
                       "path; one row per accepted image.", {"python", "jpeg"}),
        "rejected_images": _out("Photos that could not be used (zero-byte, truncated, not an image, too small, "
                                "decompression bomb, missing), each with its reason: nothing is dropped silently."),
    },
)
def images(
    context: AssetExecutionContext,
    config: ImageConfig,
    storage: StorageResource,
    pet911_photos: pa.Table,
    telegram_posts: pa.Table,
    external_datasets: pa.Table,
):
    """Validate and convert every photo of every source into curated JPEGs; rejects are recorded with a reason."""
    from curation.images import process_images

    catalogue = pa.concat_tables([t.cast(CATALOGUE_SCHEMA) for t in (pet911_photos, telegram_posts, external_datasets)])
    accepted, rejected = process_images(catalogue, storage.layout.images, options=config.options(),
                                        workers=config.worker_count())
    reasons = rejected.group_by("reason").aggregate([("reason", "count")]).to_pylist() if rejected.num_rows else []
    context.log.info(f"{accepted.num_rows} images accepted, {rejected.num_rows} rejected")
    yield MaterializeResult(
        asset_key="images",
        value=accepted,
        metadata={
            "images": accepted.num_rows,
            "input_photos": catalogue.num_rows,
            "preview": preview(accepted, ["image_id", "identity_id", "source", "width", "height", "src_format"]),
            "thumbnails": photo_grid("Curated photos, a few animals", identity_rows(accepted)),
        },
    )
    yield MaterializeResult(
        asset_key="rejected_images",
        value=rejected,
        metadata={"rejected": rejected.num_rows, "reasons": records_table(reasons, ["reason", "reason_count"]),
                  "preview": preview(rejected, ["identity_id", "source", "reason", "detail"])},
    )


@asset(group_name="curation", kinds={"python"}, code_version="2", owners=OWNERS)
def image_hashes(context: AssetExecutionContext, config: ImageConfig, images: pa.Table) -> MaterializeResult:
    """64-bit pHash and dHash of every curated image (the ``imagehash`` algorithms, fast decoding); a curated file
    that no longer decodes (truncated on disk) is converted again from its raw capture and hashed again."""
    from curation.images import hash_curated

    hashes = hash_curated(images, options=config.options(), workers=config.worker_count())
    reconverted = int((hashes.schema.metadata or {}).get(b"petid.reconverted", b"0"))
    hashes = hashes.append_column("image_id", images.column("image_id"))
    return MaterializeResult(value=hashes, metadata={"hashed": hashes.num_rows, "reconverted": reconverted})


@multi_asset(
    outs={
        "deduplicated_images": _out("Images with exact and near duplicates removed within each identity (largest "
                                    "kept) and the cross-identity policy applied."),
        "cross_identity_duplicates": _out("Pairs of identical or near-identical photos under two different "
                                          "identities: a data-quality event, reported for review."),
    },
)
def deduplicated_images(context: AssetExecutionContext, config: DedupConfig, images: pa.Table, image_hashes: pa.Table):
    """Exact (sha256) and perceptual (pHash/dHash within a Hamming threshold) deduplication."""
    from curation.dedup import deduplicate

    hashes = image_hashes.select(["image_id", "phash", "dhash"])
    joined = images.join(hashes, keys="image_id", join_type="inner")
    result = deduplicate(joined, threshold=config.threshold, policy=config.policy)
    context.log.info(f"dedup: {result.stats}")
    yield MaterializeResult(
        asset_key="deduplicated_images",
        value=result.kept,
        metadata={**counts(result.stats), "kept": result.kept.num_rows, "policy": config.policy,
                  "threshold": config.threshold,
                  "thumbnails": photo_grid("After deduplication, a few animals", identity_rows(result.kept))},
    )
    yield MaterializeResult(
        asset_key="cross_identity_duplicates",
        value=result.cross_identity,
        metadata={
            "pairs": result.cross_identity.num_rows,
            "preview": preview(result.cross_identity, ["identity_a", "identity_b", "distance", "kind", "action"]),
            "duplicate_pairs": photo_grid("Cross-identity duplicates: photo A | photo B",
                                          _pair_rows(result.cross_identity), tile=160,
                                          empty="no cross-identity duplicates"),
        },
    )


def _pair_rows(pairs: pa.Table) -> list:
    return [([p["path_a"], p["path_b"]], f"{p['identity_a']} | {p['identity_b']} ({p['kind']}, d={p['distance']})")
            for p in pairs.slice(0, PREVIEW_PAIRS).to_pylist()]


def _crop_rows(images: pa.Table, crops: pa.Table) -> list:
    cropped = crops.filter(pc.equal(crops.column("crop_status"), "cropped")).slice(0, PREVIEW_PAIRS).to_pylist()
    wanted = pa.array([c["image_id"] for c in cropped], pa.string())
    originals = {r["image_id"]: r for r in images.filter(pc.is_in(images.column("image_id"), wanted))
                 .select(["image_id", "identity_id", "path"]).to_pylist()}
    return [([originals[c["image_id"]]["path"], c["crop_path"]],
             f"{originals[c['image_id']]['identity_id']} {c['det_species']} {c['det_conf'] or 0:.2f}")
            for c in cropped if c["image_id"] in originals]


@asset(group_name="curation", kinds={"python", "pytorch"}, code_version="1", owners=OWNERS)
def animal_crops(
    context: AssetExecutionContext, deduplicated_images: pa.Table, storage: StorageResource, detector: DetectorResource
) -> MaterializeResult:
    """Animal crops from a YOLO detector (cat/dog only, species must agree with the listing, largest confident
    box, margin); off unless a detector is configured, in which case every image is recorded as ``disabled``."""
    from curation.crops import crop_images

    model = detector.detector()
    crops = crop_images(
        deduplicated_images, model, storage.layout.crops, margin=detector.margin, min_box_side=detector.min_box_side
    )
    statuses = crops.group_by("crop_status").aggregate([("crop_status", "count")]).to_pylist() if crops.num_rows else []
    cropped = pc.sum(pc.equal(crops.column("crop_status"), "cropped")).as_py() or 0
    return MaterializeResult(
        value=crops,
        metadata={
            "detector": detector.weights or "disabled",
            "cropped": int(cropped),
            "statuses": records_table(statuses, ["crop_status", "crop_status_count"]),
            "crops": photo_grid("Photo | animal crop", _crop_rows(deduplicated_images, crops),
                                empty="no crops (detector disabled or nothing detected)"),
        },
    )


defs = Definitions(assets=[images, image_hashes, deduplicated_images, animal_crops])
