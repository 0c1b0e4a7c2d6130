"""``petid embed | evaluate | ablate | compare | index build | search``: the same code the Dagster assets call.

REF (``--model``) is ``baseline``, ``latest``, ``production``, a version id or a path, resolved in ``--registry``
(default ``$PETID_HOME/models``). ``--dataset`` is ``manifest`` (the curated manifest; ``evaluate`` then uses its
``test`` split only) or an importer's ``FORMAT:PATH`` (every identity counts as unseen by the model).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from training.config import PRESETS


def _registry(args: argparse.Namespace) -> Path:
    from petid.settings import Layout, petid_home

    return Path(args.registry) if args.registry else Layout(petid_home()).models


def _cache(args: argparse.Namespace) -> Path | None:
    from petid.settings import Layout, petid_home

    if getattr(args, "no_cache", False):
        return None
    return Path(args.cache) if args.cache else Layout(petid_home()).cache / "embeddings"


def _load(spec: str, test_only: bool):
    from curation.frames import load_dataset
    from petid.errors import UserError

    frame = load_dataset(spec)  # a missing folder or unknown format raises a UserError: one line, exit 2
    if test_only and (spec == "manifest" or spec.startswith("manifest:")):
        if "split" not in frame:
            raise UserError(f"{spec}: the manifest has no 'split' column")
        frame = frame[frame["split"] == "test"]
        if frame.empty:
            raise UserError(f"{spec}: the manifest has no test split to evaluate")
    return frame


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _embedder(args: argparse.Namespace):
    from evaluation.embeddings import load_photo_embedder

    return load_photo_embedder(args.model, _registry(args))


def cmd_embed(args: argparse.Namespace) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from evaluation.embeddings import embed_frame

    frame = _load(args.dataset, test_only=False)
    vectors = embed_frame(frame, _embedder(args), _cache(args), batch_size=args.batch_size)
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), vectors.shape[1])
    table = pa.table(
        {
            "path": pa.array(frame["path"].astype(str).tolist()),
            "identity": pa.array(frame["identity_id"].astype(str).tolist()),
            "embedding": column.cast(pa.list_(pa.float32())),
        }
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, args.out)
    print(json.dumps({"out": str(args.out), "n_images": len(frame), "dim": int(vectors.shape[1])}))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from evaluation.evaluate import evaluate

    frame = _load(args.dataset, test_only=True)
    out = Path(args.out)
    report_dir = Path(args.report_dir) if args.report_dir else out.parent
    report = evaluate(frame, args.model, _registry(args), report_dir, _cache(args), baseline_ref=args.baseline,
                      batch_size=args.batch_size, seed=args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    headline = {k: report[k] for k in ("model", "top1", "top5", "top10", "map", "roc_auc", "eer")}
    print(json.dumps({**headline, "baseline_top1": report["baseline"]["top1"], "report": str(out)}))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from evaluation.mcnemar import compare_reports

    reports = []
    for path in (args.report_a, args.report_b):
        try:
            reports.append(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            print(f"error: cannot read report {path}: {exc}", file=sys.stderr)
            return 2
    try:
        result = compare_reports(*reports)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


def _places(path: str | None):
    """The ``--places`` table (Parquet or CSV) for ``build_index``, or ``None``."""
    import pandas as pd

    from evaluation.search import SearchError

    if path is None:
        return None
    file = Path(path)
    if not file.is_file():
        raise SearchError(f"--places {path}: no such file")
    try:
        return pd.read_csv(file) if file.suffix.lower() == ".csv" else pd.read_parquet(file)
    except Exception as exc:  # noqa: BLE001 (any reader failure is the file's: one line)
        raise SearchError(f"--places {path}: cannot read it as {'CSV' if file.suffix.lower() == '.csv' else 'Parquet'}"
                          f" ({type(exc).__name__}: {exc})") from None


def cmd_index_build(args: argparse.Namespace) -> int:
    from evaluation.search import build_index

    places = _places(args.places)  # a bad places file fails before the dataset is read or anything embedded
    frame = _load(args.dataset, test_only=False)
    info = build_index(frame, args.model, _registry(args), args.out, embedder=_embedder(args), cache_dir=_cache(args),
                       dtype=args.dtype, backend=args.backend, batch_size=args.batch_size, places=places)
    print(json.dumps(info))
    return 0


def _search_arguments(args: argparse.Namespace) -> dict:
    """The query and filters of ``petid search`` as ``SearchIndex.search`` keywords, every value checked (a
    ``SearchError``: one line, exit 2) before the index is loaded."""
    from evaluation.search import SearchError, check_aggregation, check_query_photo, parse_point, parse_radius

    if args.listing is not None and args.photos:
        raise SearchError("give query photos or --listing, not both")
    if args.listing is None and not args.photos:
        raise SearchError("nothing to search with: give one or more PHOTOs of the animal, or --listing ID_OR_URL")
    for photo in args.photos:
        check_query_photo(photo)
    check_aggregation(args.aggregation)
    near = parse_point(args.near, "--near") if args.near is not None else None
    if near is None and (args.radius_km is not None or args.include_unlocated):
        raise SearchError("--radius-km and --include-unlocated need --near LAT,LNG")
    radius = parse_radius(args.radius_km, "--radius-km") if args.radius_km is not None else None
    if args.text is not None and not args.photos:
        raise SearchError("--text describes the animal in your photos: give the PHOTOs too")
    return {"query": list(args.photos) or None, "text": args.text, "listing": args.listing, "top_k": args.top_k, "species": args.species,
            "kind": args.kind, "since": args.since, "until": args.until, "aggregation": args.aggregation,
            "near": near, "radius_km": radius, "include_unlocated": args.include_unlocated}


def _caption(r: dict) -> str:
    km = f" {r['distance_km']:.1f}km" if r.get("distance_km") is not None else ""
    return f"{r['rank']}. {r['identity_id']} {r['score']:.3f}{km} {r['kind'] or ''} {r['date'] or ''}"


def _near_summary(found) -> str:
    lat, lng = found.near
    line = (f"near {lat:.4f},{lng:.4f} within {found.radius_km:g} km: {found.n_outside_radius} listing(s) farther "
            "away left out")
    if found.include_unlocated:
        return line + f", {found.n_unlocated} without a location kept (--include-unlocated)"
    return line + f", {found.n_unlocated} dropped for lack of a location (--include-unlocated keeps them)"


def cmd_search(args: argparse.Namespace) -> int:
    import re

    from evaluation.plots import contact_sheet
    from evaluation.search import SearchIndex

    options = _search_arguments(args)  # bad input: one line, exit 2, before the index is loaded
    index = SearchIndex.load(args.index, backend=args.backend, registry_root=_registry(args))
    found = index.search(**options)
    results = found.results
    n = len(found.query_photos)
    what = f"listing {found.query_listing}" if found.query_listing else ", ".join(
        Path(p).name for p in found.query_photos[:3]) + (", ..." if n > 3 else "")
    what += f" ({n} photo{'s' if n != 1 else ''})"
    # Never a fixed name in the shared temp folder (a planted symlink there would be followed): a fresh private
    # (0700) folder per run unless --sheet names the file.
    stem = re.sub(r"[^\w.-]+", "_", found.query_listing) if found.query_listing else Path(args.photos[0]).stem
    sheet = Path(args.sheet) if args.sheet else Path(tempfile.mkdtemp(prefix="petid-search-")) / f"{stem}.png"
    contact_sheet(
        [([r["query_photo"], r["best_photo"]], _caption(r)) for r in results],
        sheet,
        title=f"query {what} ({found.aggregation}) | best photo pair of each listing",
    )
    if args.json:
        summary = found.to_dict()
        summary.pop("results")
        print(json.dumps({"query": summary, "results": results, "contact_sheet": str(sheet)},
                         ensure_ascii=False, indent=2))
        return 0
    print(f"query: {what}, aggregation {found.aggregation}; {found.n_candidates} listing(s) passed the filters")
    if found.near is not None:
        print(_near_summary(found))
    for r in results:
        km = (f"{r['distance_km']:>7.1f} km  " if r["distance_km"] is not None else "      - km  ") \
            if found.near is not None else ""
        print(f"{r['rank']:>3}  {r['score']:.3f}  {km}{r['n_photos']:>2} ph  {r['identity_id']}  {r['source']}  "
              f"{r['species'] or '-'}  {r['kind'] or '-'}  {r['date'] or '-'}  {r['url'] or '-'}  "
              f"{r['query_photo'] or '-'} ~ {r['best_photo']} ({r['photo_score']:.3f})")
    print(f"contact sheet: {sheet}")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    import pandas as pd

    from curation.frames import load_dataset
    from curation.splits import assign_splits
    from evaluation.ablation import ablation_configs, ablation_markdown, check_ablation, run_ablation
    from training.config import TrainConfig

    check_ablation(_names(args.encoders), _names(args.fusion))
    frame = load_dataset(args.dataset)
    if "split" not in frame:  # an imported dataset: identity-disjoint train/val/test by the manifest's own rule
        splits = assign_splits(sorted(frame["identity_id"].astype(str).unique()), seed=args.seed)
        frame = frame.assign(split=frame["identity_id"].astype(str).map(splits))
    n_train = int(frame.loc[frame["split"] == "train", "identity_id"].nunique())
    base = (TrainConfig.from_yaml(args.config) if args.config
            else TrainConfig.preset(args.preset, n_identities=n_train))
    if args.epochs is not None:
        base = TrainConfig.from_dict({**base.to_dict(), "epochs": args.epochs})
    configs = ablation_configs(base, _names(args.encoders), _names(args.fusion), text_only=not args.no_text_only)
    pairs = []
    if args.known_pairs:
        known = pd.read_csv(args.known_pairs, dtype=str)
        pairs = list(zip(known["lost_identity_id"], known["found_identity_id"]))
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    result = run_ablation(frame, configs, _registry(args), args.out, _cache(args), known_pairs=pairs, log=log,
                          seed=args.seed)
    print(json.dumps(result["rows"], indent=1) if args.json else ablation_markdown(result["rows"]))
    return 0


def _names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _common(parser: argparse.ArgumentParser, model: bool = True) -> None:
    if model:
        parser.add_argument("--model", default="latest", help="baseline | latest | production | version id | path")
    parser.add_argument("--registry", help="model registry (default $PETID_HOME/models)")
    parser.add_argument("--cache", help="embedding cache folder (default $PETID_HOME/cache/embeddings)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    parser.add_argument("--batch-size", type=_positive_int, default=32)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="embed a dataset's photos to Parquet (path, identity, embedding)")
    p.add_argument("--dataset", required=True, help="FORMAT:PATH or manifest")
    p.add_argument("--out", required=True, help="output .parquet")
    _common(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("evaluate", help="identification + verification report, model beside the baseline")
    p.add_argument("--dataset", required=True, help="FORMAT:PATH (all identities unseen) or manifest (test split)")
    p.add_argument("--out", required=True, help="report.json to write")
    p.add_argument("--report-dir", help="where report.md/html and plots go (default: beside --out)")
    p.add_argument("--baseline", default="baseline", help="model REF to compare against (default baseline)")
    p.add_argument("--seed", type=int, default=0, help="verification pair sampling seed")
    _common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("ablate", help="train image-only, text-only and fused models on one dataset and print the "
                       "study's comparison table (same test queries, intervals, McNemar)")
    p.add_argument("--dataset", required=True, help="manifest (its splits) or FORMAT:PATH (split here) with a text "
                   "column")
    p.add_argument("--encoders", default="hashed-ngrams", help="comma-separated text encoders: hashed-ngrams "
                   "(offline) and/or Hugging Face ids such as intfloat/e5-small-v2")
    p.add_argument("--fusion", default="concat,scalar,gated,cross_attention", help="comma-separated fusions")
    p.add_argument("--no-text-only", action="store_true", help="skip the text-only model per encoder")
    p.add_argument("--preset", choices=PRESETS, default="auto", help="training preset of every model")
    p.add_argument("--config", help="YAML TrainConfig for every model (wins over --preset)")
    p.add_argument("--epochs", type=int, help="override the preset's epochs")
    p.add_argument("--known-pairs", help="CSV of lost_identity_id,found_identity_id pairs: adds the cross-listing "
                   "protocol, where query and answer do not share a listing's text")
    p.add_argument("--out", required=True, help="folder for the report and ablation.md")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    _common(p, model=False)
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("compare", help="McNemar test of two reports' top-1 hits on their shared queries")
    p.add_argument("report_a")
    p.add_argument("report_b")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("index", help="photo-search index")
    index_sub = p.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    b = index_sub.add_parser("build", help="embed a gallery and write a search index folder")
    b.add_argument("--dataset", required=True, help="FORMAT:PATH or manifest")
    b.add_argument("--out", required=True, help="index folder")
    b.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    b.add_argument("--backend", choices=("auto", "exact", "binary", "usearch"), default="auto",
                   help="auto: exact up to 200k photos, binary codes + exact re-rank above")
    b.add_argument("--places", help="Parquet/CSV, one row per listing: identity_id and any of lat, lng, city, title "
                   "(lets `petid search --near` filter by distance)")
    _common(b)
    b.set_defaults(func=cmd_index_build)

    p = sub.add_parser("search", help="find the listing of the animal in your photos: one row per listing, plus a "
                       "contact sheet")
    p.add_argument("photos", nargs="*", metavar="PHOTO", help="one or more photos of the same animal")
    p.add_argument("--listing", metavar="ID_OR_URL",
                   help="search with an indexed listing's own photos (identity id or url) instead; it is left out")
    p.add_argument("--index", required=True, help="index folder from `petid index build`")
    p.add_argument("--text", help="your description of the animal (breed, colour, markings, collar), for an index "
                   "built with a fused model; phone numbers and links are stripped before it is encoded")
    p.add_argument("--top-k", type=_positive_int, default=10, help="candidate listings to return (default 10)")
    p.add_argument("--aggregation", default="mean",
                   help="listing score from its query x listing photo pairs: mean (default), max or top<k>mean")
    p.add_argument("--species", choices=("cat", "dog", "other"))
    p.add_argument("--kind", choices=("lost", "found"), help="kind of listing to return (found a pet: --kind lost)")
    p.add_argument("--since", help="only listings dated on/after this ISO date (undated ones are kept)")
    p.add_argument("--until", help="only listings dated on/before this ISO date")
    p.add_argument("--near", metavar="LAT,LNG",
                   help="only listings within --radius-km of this point (degrees; negative: --near=-33.92,18.42)")
    p.add_argument("--radius-km", metavar="R", help="radius for --near in km (default 30, as matching)")
    p.add_argument("--include-unlocated", action="store_true",
                   help="with --near: keep listings without coordinates (default: dropped, and counted)")
    p.add_argument("--backend", choices=("auto", "exact", "binary", "usearch"), help="override the index's backend")
    p.add_argument("--sheet", help="contact-sheet PNG path (default: a new private folder in the temp folder)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--registry", help="model registry (default $PETID_HOME/models)")
    p.set_defaults(func=cmd_search)
