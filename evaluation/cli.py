"""``petid embed | evaluate | compare | index build | search``: the same code the Dagster assets call.

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


def cmd_index_build(args: argparse.Namespace) -> int:
    from evaluation.search import build_index

    frame = _load(args.dataset, test_only=False)
    info = build_index(frame, args.model, _registry(args), args.out, embedder=_embedder(args), cache_dir=_cache(args),
                       dtype=args.dtype, backend=args.backend, batch_size=args.batch_size)
    print(json.dumps(info))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from evaluation.plots import contact_sheet
    from evaluation.search import SearchIndex, check_query_photo

    check_query_photo(args.photo)  # SearchError (a UserError): one line, exit 2, before the index is loaded
    index = SearchIndex.load(args.index, backend=args.backend, registry_root=_registry(args))
    results = index.query(args.photo, top_k=args.top_k, species=args.species, kind=args.kind, since=args.since,
                          until=args.until)
    # Never a fixed name in the shared temp folder (a planted symlink there would be followed): a fresh private
    # (0700) folder per run unless --sheet names the file.
    sheet = Path(args.sheet) if args.sheet else Path(tempfile.mkdtemp(prefix="petid-search-")) / f"{Path(args.photo).stem}.png"
    contact_sheet(
        [([args.photo, r["best_photo"]], f"{r['rank']}. {r['identity_id']} {r['score']:.3f} {r['kind'] or ''} "
          f"{r['date'] or ''}") for r in results],
        sheet,
        title=f"query {Path(args.photo).name} | best-matching photo of each candidate",
    )
    if args.json:
        print(json.dumps({"query": str(args.photo), "results": results, "contact_sheet": str(sheet)},
                         ensure_ascii=False, indent=2))
    else:
        for r in results:
            print(f"{r['rank']:>3}  {r['score']:.3f}  {r['identity_id']}  {r['source']}  {r['species'] or '-'}  "
                  f"{r['kind'] or '-'}  {r['date'] or '-'}  {r['url'] or '-'}  {r['best_photo']}")
        print(f"contact sheet: {sheet}")
    return 0


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
    _common(b)
    b.set_defaults(func=cmd_index_build)

    p = sub.add_parser("search", help="find the animal in a photo: one row per candidate, plus a contact sheet")
    p.add_argument("photo")
    p.add_argument("--index", required=True, help="index folder from `petid index build`")
    p.add_argument("--top-k", type=_positive_int, default=10, help="candidate animals to return (default 10)")
    p.add_argument("--species", choices=("cat", "dog", "other"))
    p.add_argument("--kind", choices=("lost", "found"), help="kind of listing to return (found a pet: --kind lost)")
    p.add_argument("--since", help="only animals listed on/after this ISO date (undated ones are kept)")
    p.add_argument("--until", help="only animals listed on/before this ISO date")
    p.add_argument("--backend", choices=("auto", "exact", "binary", "usearch"), help="override the index's backend")
    p.add_argument("--sheet", help="contact-sheet PNG path (default: a new private folder in the temp folder)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--registry", help="model registry (default $PETID_HOME/models)")
    p.set_defaults(func=cmd_search)
