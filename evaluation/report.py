"""Write an evaluation report: ``report.json``, ``report.md``, ``report.html`` and PNG figures in one folder."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evaluation.plots import contact_sheet, roc_plot, score_histograms
from petid.tables import html_table, markdown_table

if TYPE_CHECKING:
    from evaluation.evaluate import ModelEvaluation

REPORT_COLUMNS = ("top1", "top5", "top10", "map", "roc_auc", "eer", "eer_threshold", "best_acc", "best_acc_threshold")
FIGURES = {"roc": "roc.png", "scores": "scores.png", "worst": "worst_false_matches.png"}


INTERVAL_KEYS = ("top1", "top5", "map", "roc_auc", "eer")


def _interval(intervals: dict[str, Any] | None, key: str) -> str:
    bounds = (intervals or {}).get(key)
    return f"[{bounds[0]:.3f}, {bounds[1]:.3f}]" if bounds else "—"


def _table(header: list[str], rows: list[list[Any]]) -> tuple[str, str]:
    """The same table as Markdown and as HTML (``petid.tables``; four decimals, missing values as a dash)."""
    return (markdown_table(header, rows, float_format=".4f", none="—"),
            html_table(header, rows, float_format=".4f", none="—"))


def worst_false_matches(frame: pd.DataFrame, model: ModelEvaluation, limit: int = 12) -> list[dict[str, Any]]:
    """Top-1 misses with the most confident wrong match: query, wrongly matched photo, score."""
    ident = model.identification
    misses = np.flatnonzero((ident.ranks > 1) & np.isfinite(ident.best_wrong_score))
    misses = misses[np.argsort(-ident.best_wrong_score[misses], kind="stable")][:limit]
    return [
        {
            "query": frame.at[int(ident.query_index[i]), "path"],
            "query_identity": frame.at[int(ident.query_index[i]), "identity_id"],
            "match": frame.at[int(ident.best_wrong[i]), "path"],
            "match_identity": frame.at[int(ident.best_wrong[i]), "identity_id"],
            "score": float(ident.best_wrong_score[i]),
        }
        for i in misses
    ]


def _figures(out: Path, frame: pd.DataFrame, model: ModelEvaluation, baseline: ModelEvaluation,
             labels: dict[str, str]) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    """Draw the ROC, score histograms and worst-false-match sheet; returns their paths and the worst matches."""
    paths = {name: out / file for name, file in FIGURES.items()}
    roc_plot(
        {
            labels["model"]: (model.verification.fpr, model.verification.tpr, model.verification.roc_auc),
            labels["baseline"]: (baseline.verification.fpr, baseline.verification.tpr, baseline.verification.roc_auc),
        },
        paths["roc"],
    )
    score_histograms(
        {
            labels["model"]: (model.verification.scores, model.verification.labels),
            labels["baseline"]: (baseline.verification.scores, baseline.verification.labels),
        },
        paths["scores"],
    )
    worst = worst_false_matches(frame, model)
    contact_sheet(
        [([w["query"], w["match"]], f"{w['query_identity']} -> {w['match_identity']} ({w['score']:.3f})") for w in worst],
        paths["worst"],
        title="worst false matches: query | wrongly matched gallery photo",
    )
    return paths, worst


def _entries(report: dict[str, Any], labels: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """(row name, metrics) for the model, the baseline and, if present, the candidate."""
    entries = [(labels["model"], report), (labels["baseline"], report["baseline"])]
    if report.get("candidate"):
        entries.append((f"candidate {report['candidate']['model']} (not in production)", report["candidate"]))
    entries += [(f"{v['modality']} {v['name']} {v['model']}", v) for v in report.get("variants") or []]
    return entries


def _headline_tables(report: dict[str, Any], labels: dict[str, str]) -> tuple[str, str, str, str, str]:
    """Headline metrics and confidence-interval tables (Markdown, HTML each) and the interval note."""
    entries = _entries(report, labels)
    headline_md, headline_html = _table(["model", *REPORT_COLUMNS],
                                        [[name, *(e.get(k) for k in REPORT_COLUMNS)] for name, e in entries])
    level = int(round(100 * report.get("interval_method", {}).get("level", 0.95)))
    interval_header = ["model", *(f"{k} {level}% CI" for k in INTERVAL_KEYS)]
    interval_rows = [[name, *(_interval(e.get("intervals"), k) for k in INTERVAL_KEYS)] for name, e in entries]
    interval_rows.append(["model − baseline (paired)", *(_interval(report.get("delta_intervals"), k) for k in INTERVAL_KEYS)])
    intervals_md, intervals_html = _table(interval_header, interval_rows)
    method = report.get("interval_method", {})
    intervals_note = (f"Intervals: percentile bootstrap over identities ({method.get('n_boot')} replicates). "
                      "The verification pairs and every model's scores are in pairs.csv.")
    return headline_md, headline_html, intervals_md, intervals_html, intervals_note


def _group_tables(report: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Per-source and per-species tables with their headings, as Markdown sections and HTML fragments."""
    group_header = ["group", "n_queries", "n_identities", "top1", "top5", "top10", "map", "baseline_top1", "baseline_map"]
    groups_md, groups_html = [], []
    for key in ("per_source", "per_species"):
        rows = [[name, *(vals.get(h) for h in group_header[1:])] for name, vals in report[key].items()]
        md, htm = _table([key.replace("per_", ""), *group_header[1:]], rows)
        groups_md.append(f"### {key.replace('_', ' ')}\n\n{md}")
        groups_html.append(f"<h3>{html.escape(key.replace('_', ' '))}</h3>{htm}")
    return groups_md, groups_html


def _mcnemar_line(report: dict[str, Any]) -> str:
    """One sentence with the model-vs-baseline McNemar test."""
    mc = report["mcnemar"]
    line = (f"McNemar (top-1, model vs baseline): b={mc['b']}, c={mc['c']}, statistic={mc['statistic']:.3f}, "
            f"p={mc['p_value']:.4g} ({mc['method']})")
    fusion = report.get("fusion_vs_image")
    if fusion:
        fm = fusion["mcnemar"]
        line += (f". Fusion: best fused ({fusion['fused']}) Top-1 {fusion['top1_fused']:.3f} vs image-only "
                 f"{fusion['top1_image']:.3f} ({fusion['top1_gain']:+.3f}); McNemar b={fm['b']}, c={fm['c']}, "
                 f"p={fm['p_value']:.4g} ({fm['method']}). Caveat: every photo of a listing carries the same "
                 "listing text, so a text-reading model can match a listing's photos by their shared text; these "
                 "numbers are an upper bound, not the gain for a finder who writes their own description")
        cross = report.get("cross_listing") or {}
        cf = cross.get("fusion_vs_image")
        if cf:
            line += (f". Across listings of one animal ({cross['n_pairs']} known lost/found pairs, {cross['n_queries']} "
                     f"queries; a query's own listing left out, so no text is shared): best fused ({cf['fused']}) "
                     f"Top-1 {cf['top1_fused']:.3f} vs image-only {cf['top1_image']:.3f} ({cf['top1_gain']:+.3f}), "
                     f"McNemar p={cf['mcnemar']['p_value']:.4g}")
        elif report.get("variants"):
            line += (". No known lost/found pair has both listings among these test animals, so the gain for a "
                     "finder's own description is not measured here")
        for v in report.get("variants") or []:
            photo_only = v.get("photo_only_query")
            if photo_only:
                mc = photo_only.get("mcnemar_vs_image") or {}
                line += (f". {v['name']} with photo-only queries (the gallery keeps its text): Top-1 "
                         f"{photo_only['top1']:.3f}" + (f", McNemar vs image-only p={mc['p_value']:.4g}" if mc else ""))
    return line


def _counts_line(report: dict[str, Any]) -> str:
    """Sizes of the evaluation set: identities, photos, queries and pairs."""
    return (
        f"{report['n_identities']} identities, {report['n_images']} photos, {report['n_queries']} queries, "
        f"{report['n_pairs_pos']} positive / {report['n_pairs_neg']} negative pairs"
    )


def _markdown(report: dict[str, Any], counts: str, headline_md: str, intervals_md: str, intervals_note: str,
              mc_line: str, groups_md: list[str]) -> str:
    """The Markdown report (without the trailing newline)."""
    return "\n\n".join(
        [
            f"# Evaluation report: {report['model']}",
            counts,
            headline_md,
            intervals_md,
            intervals_note,
            mc_line,
            "## Breakdown",
            *groups_md,
            *_hard_negative_lines(report),
            "## Figures",
            f"![ROC]({FIGURES['roc']})",
            f"![genuine/impostor scores]({FIGURES['scores']})",
            f"![worst false matches]({FIGURES['worst']})",
        ]
    )


def _hard_negative_rows(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    rows = report.get("hard_negatives") or []
    models = [k for k in (rows[0] if rows else {}) if k.startswith("score_")]
    return ["listing A", "listing B", *models], [[r["listing_a"], r["listing_b"], *(r[m] for m in models)]
                                                 for r in rows]


def _hard_negative_lines(report: dict[str, Any]) -> list[str]:
    """Pairs reviewers rejected, with each model's listing score (lower is better)."""
    if not report.get("hard_negatives"):
        return []
    header, rows = _hard_negative_rows(report)
    return ["## Hard negatives (pairs reviewers said are different animals)", markdown_table(header, rows)]


def _hard_negative_html(report: dict[str, Any]) -> str:
    if not report.get("hard_negatives"):
        return ""
    header, rows = _hard_negative_rows(report)
    return "<h2>Hard negatives (pairs reviewers said are different animals)</h2>" + html_table(header, rows)


def _html(report: dict[str, Any], counts: str, headline_html: str, intervals_html: str, intervals_note: str,
          mc_line: str, groups_html: list[str]) -> str:
    """The self-contained HTML report."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Evaluation {html.escape(str(report['model']))}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:100%}</style></head><body>"
        f"<h1>Evaluation report: {html.escape(str(report['model']))}</h1><p>{html.escape(counts)}</p>"
        f"{headline_html}{intervals_html}<p>{html.escape(intervals_note)}</p><p>{html.escape(mc_line)}</p><h2>Breakdown</h2>{''.join(groups_html)}"
        + _hard_negative_html(report) + "<h2>Figures</h2>"
        + "".join(f"<p><img src='{FIGURES[k]}' alt='{k}'></p>" for k in ("roc", "scores", "worst"))
        + "</body></html>"
    )


def _write_files(out: Path, paths: dict[str, Path], report: dict[str, Any], md_text: str,
                 html_text: str) -> dict[str, Path]:
    """Write report.json/.md/.html next to the figures; returns every file's path by name."""
    files = {**paths, "json": out / "report.json", "md": out / "report.md", "html": out / "report.html"}
    files["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False), encoding="utf-8")
    files["md"].write_text(md_text + "\n", encoding="utf-8")
    files["html"].write_text(html_text, encoding="utf-8")
    return files


def write_report(
    report: dict[str, Any],
    out_dir: str | os.PathLike[str],
    frame: pd.DataFrame,
    model: ModelEvaluation,
    baseline: ModelEvaluation,
) -> dict[str, Path]:
    """Write the JSON, Markdown, HTML and figures; returns ``{name: path}``. ``report`` gains ``worst_false_matches``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = {"model": f"trained {model.model}", "baseline": f"baseline {baseline.model}"}
    paths, report["worst_false_matches"] = _figures(out, frame, model, baseline, labels)
    headline_md, headline_html, intervals_md, intervals_html, intervals_note = _headline_tables(report, labels)
    groups_md, groups_html = _group_tables(report)
    mc_line, counts = _mcnemar_line(report), _counts_line(report)
    md_text = _markdown(report, counts, headline_md, intervals_md, intervals_note, mc_line, groups_md)
    html_text = _html(report, counts, headline_html, intervals_html, intervals_note, mc_line, groups_html)
    return _write_files(out, paths, report, md_text, html_text)
