"""Listing text + photos: the offline text encoder, each fusion, missing sides, training, registry and search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from training.config import ConfigError, TrainConfig
from training.fusion import FUSIONS, build_fusion
from training.text_encoders import HashedNgramEncoder, HashedNgramTokenizer, build_text_encoder, pooled

COLOURS = ("рыжий", "серый", "белый", "чёрный")
COLLARS = ("синий ошейник", "красный ошейник", "без ошейника")


def test_tokenizer_shares_ngrams_across_russian_inflections() -> None:
    tok = HashedNgramTokenizer(buckets=1 << 16, max_words=8, max_grams=12)
    masc, fem, other = (set(tok.word_ids(w)) - {0} for w in ("черный", "черная", "лабрадор"))
    assert len(masc & fem) >= 4 and not (masc & other)  # чёрный/чёрная share n-grams; unrelated words do not
    ids = tok(["Чёрный кот, тел. +7 916 123-45-67", None, ""])
    assert ids.shape == (3, 8, 12) and ids.dtype == np.int64
    assert (ids[0, :2] != 0).any(axis=1).all() and not ids[0, 2:].any()  # two words: the phone was stripped
    assert not ids[1].any() and not ids[2].any()  # no text → all padding
    assert np.array_equal(tok(["чёрный кот"])[0], tok(["ЧЕРНЫЙ   кот!"])[0])  # case, ё and punctuation normalised


def test_hashed_encoder_tokens_mask_and_pooling() -> None:
    encoder = HashedNgramEncoder(dim=16, buckets=1024, max_words=6)
    ids = torch.from_numpy(encoder.tokenizer(["серый кот", None]))
    tokens, mask = encoder(ids)
    assert tokens.shape == (2, 6, 16) and mask.tolist() == [[True, True, False, False, False, False], [False] * 6]
    vectors = pooled(tokens, mask)
    assert torch.all(vectors[1] == 0) and vectors[0].norm() > 0
    vectors.sum().backward()
    assert encoder.table.weight.grad[0].abs().sum() == 0  # padding row never learns


def test_text_encoder_names() -> None:
    assert isinstance(build_text_encoder("hashed-ngrams", 8, 64), HashedNgramEncoder)
    with pytest.raises(ConfigError, match="unknown text encoder"):
        build_text_encoder("bag-of-words")
    try:
        import transformers  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="uv sync --extra hf"):
            build_text_encoder("intfloat/multilingual-e5-small")


def _inputs(batch: int = 4, dim: int = 8, tokens: int = 5, patches: int = 3):
    torch.manual_seed(0)
    norm = torch.nn.functional.normalize
    return dict(image=norm(torch.randn(batch, dim), dim=1), text=norm(torch.randn(batch, dim), dim=1),
                patches=torch.randn(batch, patches, 12), tokens=torch.randn(batch, tokens, 6),
                token_mask=torch.ones(batch, tokens, dtype=torch.bool))


@pytest.mark.parametrize("name", FUSIONS)
def test_every_fusion_starts_as_the_image_or_the_even_mix_and_learns_from_text(name: str) -> None:
    fusion = build_fusion(name, 8, token_dim=6, patch_dim=12)
    x = _inputs()
    both = torch.ones(4, dtype=torch.bool)
    out = fusion(x["image"], x["text"], both, both, patches=x["patches"], tokens=x["tokens"], token_mask=x["token_mask"])
    assert out.shape == (4, 8)
    start = (x["image"] + x["text"]) / 2 if name == "gated" else x["image"]  # a shut gate would never open
    assert torch.allclose(out, start, atol=1e-6)  # epoch 0: the image model (the even mix for the gate)
    loss = -(torch.nn.functional.normalize(out, dim=1) * x["text"]).sum()  # pull towards the text
    loss.backward()
    text_path = [p for n, p in fusion.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert text_path, f"{name}: no parameter receives a gradient from the text"


@pytest.mark.parametrize("name", FUSIONS)
def test_missing_text_embeds_the_image_alone(name: str) -> None:
    fusion = build_fusion(name, 8, token_dim=6, patch_dim=12)
    with torch.no_grad():  # make the text path matter, then hide the text
        for param in fusion.parameters():
            param.add_(0.3 * torch.randn_like(param))
    x = _inputs()
    no_text = torch.zeros(4, dtype=torch.bool)
    photo = torch.ones(4, dtype=torch.bool)
    kwargs = dict(patches=x["patches"], tokens=x["tokens"], token_mask=x["token_mask"] & False)
    a = fusion(x["image"], x["text"], photo, no_text, **kwargs)
    b = fusion(x["image"], torch.randn(4, 8), photo, no_text, **kwargs)
    assert torch.allclose(a, b, atol=1e-6)  # whatever the text side holds, it is not read
    if name == "gated":
        c = fusion(x["image"], x["text"], photo, no_text)
        assert torch.allclose(c, x["image"], atol=1e-6) and torch.allclose(fusion.last_weights[:, 0], torch.ones(4))
        d = fusion(x["image"], x["text"], torch.zeros(4, dtype=torch.bool), torch.ones(4, dtype=torch.bool))
        assert torch.allclose(d, x["text"], atol=1e-6)  # a text without a photo embeds as its text


def test_variant_names() -> None:
    from training.train import parse_variant, variant_name, variant_suffix

    assert parse_variant("fused") == {"modality": "fused", "fusion": "gated"}
    assert parse_variant("fused:cross_attention") == {"modality": "fused", "fusion": "cross_attention"}
    assert parse_variant("text") == {"modality": "text"}
    for bad in ("fused:sum", "image", "text:gated", ""):
        with pytest.raises(ConfigError, match="unknown model variant"):
            parse_variant(bad)
    config = TrainConfig.demo(**parse_variant("fused:cross_attention"))
    assert variant_name(config) == "fused-cross-attention" and variant_suffix(config) == "-fused-cross-attention"
    assert variant_suffix(TrainConfig.demo()) == ""
    with pytest.raises(ConfigError, match="modality"):
        TrainConfig(modality="audio")


def test_image_model_versions_do_not_hash_text_fields() -> None:
    from training.train import hashed_config

    image = TrainConfig.demo()
    assert hashed_config(image) == hashed_config(TrainConfig.demo(fusion="concat", text_dim=64))
    fused = TrainConfig.demo(modality="fused")
    assert hashed_config(fused) != hashed_config(TrainConfig.demo(modality="fused", fusion="concat"))


# -- training, registry and search on a small identity set whose listing text says what the photos cannot ------


SIZES = ("маленькая", "средняя", "крупная")


def _description(animal: int, rng: np.random.Generator) -> str:
    """One person's description of the animal: its colour, collar and size words, each left out with 25 %."""
    group, member = divmod(animal, 4)
    parts = [f"окрас {COLOURS[member]}", COLLARS[(member + group) % 3], SIZES[(member + 2 * group) % 3]]
    kept = [p for p in parts if rng.random() > 0.25] or parts[:1]
    rng.shuffle(kept)
    return "кошка, " + ", ".join(kept) + f", порода метис {group}"


def _frame(root: Path) -> pd.DataFrame:
    """24 animals drawn as 6 look-alike quadruples (same shape, near-identical colour): only the text (colour,
    collar, size) tells the animals of a quadruple apart. Each animal has a lost and a found listing, 3 photos each,
    whose descriptions are written independently (attributes left out at random). The training animals' two
    listings are one identity (a reviewer confirmed them); the validation animals' are the known pairs."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    rows = []
    for animal in range(24):
        group, _ = divmod(animal, 4)
        base = (40 * group + 30, 200 - 25 * group, 90 + 20 * group)
        for kind in ("lost", "found"):
            text = _description(animal, rng)
            for j in range(3):
                img = Image.new("RGB", (72, 72), tuple(int(c + rng.integers(-12, 13)) for c in base))
                draw = ImageDraw.Draw(img)
                x, y = (int(v) for v in rng.integers(8, 28, size=2))
                draw.ellipse((x, y, x + 36, y + 36), fill=tuple(int(255 - c) for c in base))
                path = root / f"a{animal}-{kind}" / f"{j}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                img.save(path, quality=90)
                train = animal < 16  # training animals: both listings merged into one identity, as by review
                rows.append({"path": str(path), "identity_id": f"t:{animal}" if train else f"t:{animal}-{kind}",
                             "animal": animal, "split": "train" if train else "val", "kind": kind, "species": "cat",
                             "text": None if (animal == 3 and j == 0) else text})
    return pd.DataFrame(rows)


KNOWN_PAIRS = [(f"t:{a}-lost", f"t:{a}-found") for a in range(24)]


def _config(**overrides) -> TrainConfig:
    values = dict(backbone="test_efficientnet", pretrained="none", embedding_dim=32, image_size=64, p=12, epochs=15,
                  num_workers=0, cache_images=False, gate_min_val_identities=2, text_dim=32, text_buckets=4096)
    return TrainConfig.demo(**{**values, **overrides})


def _as_trained(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as the graph trains on it (``assets.model._training_frame``): the two listings of each known pair
    one animal, each row's own listing in ``merged_from``. Validation then also asks for the animal's other
    listing; with the listings apart, a listing's shared text made validation mAP ~0.92 from the first epoch and
    the best epoch was a coin toss (epoch 1 in two CI runs, a model that had not learned to read the text)."""
    import pyarrow as pa

    from curation.decisions import apply_identity_merges, connected_components

    return apply_identity_merges(pa.Table.from_pandas(frame, preserve_index=False),
                                 connected_components(KNOWN_PAIRS)).to_pandas()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    from training.train import train_model

    root = tmp_path_factory.mktemp("mm")
    frame = _frame(root / "photos")
    registry = root / "models"
    out = {"frame": frame, "registry": registry}
    for name, overrides in {"image": {}, "fused": {"modality": "fused", "fusion": "gated"},
                            "text": {"modality": "text"}}.items():
        out[name] = train_model(_as_trained(frame), _config(**overrides), registry, log=lambda _: None)
    return out


def test_fused_model_round_trips_through_the_registry(trained: dict) -> None:
    from safetensors.torch import load_file

    from training.embedder import load_embedder
    from training.registry import ModelRegistry

    registry, frame = ModelRegistry(trained["registry"]), trained["frame"]
    fused = trained["fused"]
    directory = registry.path(fused.version_id)
    assert not list(directory.glob("*.pt")) and not list(directory.glob("*.pkl"))  # safetensors only
    stored = json.loads((directory / "config.json").read_text())
    assert stored["modality"] == "fused" and stored["fusion"] == "gated"
    assert any(k.startswith("text.table") for k in load_file(str(directory / "weights.safetensors")))
    aliases = registry.aliases()
    assert aliases["latest-fused-gated"] == fused.version_id and aliases["latest-text"] == trained["text"].version_id
    assert aliases["latest"] == trained["image"].version_id  # the variants never move the image model's aliases
    embedder = load_embedder(fused.version_id, registry.root)
    assert embedder.uses_text and embedder.modality == "fused"
    paths, texts = list(frame.path[:6]), list(frame.text[:6])
    again = load_embedder("latest-fused-gated", registry.root).embed(paths, texts=texts)
    assert np.allclose(embedder.embed(paths, texts=texts), again, atol=1e-5)
    no_text = embedder.embed(paths)  # photos whose listing has no text still embed
    assert no_text.shape == again.shape and np.allclose(np.linalg.norm(no_text, axis=1), 1, atol=1e-5)
    text_only = load_embedder(trained["text"].version_id, registry.root)
    assert text_only.modality == "text"
    same_text = text_only.embed(paths[:2], texts=[texts[0], texts[0]])
    assert np.allclose(same_text[0], same_text[1], atol=1e-6)  # the text model reads no pixels


def test_report_compares_image_text_and_fused_on_the_same_queries(trained: dict, tmp_path: Path) -> None:
    from evaluation.evaluate import evaluate

    frame, registry = trained["frame"], trained["registry"]
    test = frame[frame.split == "val"].reset_index(drop=True)
    image = trained["image"]
    report = evaluate(test, image.version_id, registry, tmp_path / "report", None, baseline_ref=image.baseline_id,
                      variants={"text": trained["text"].version_id, "fused-gated": trained["fused"].version_id},
                      n_boot=200, known_pairs=KNOWN_PAIRS)
    variants = {v["name"]: v for v in report["variants"]}
    assert {v["modality"] for v in variants.values()} == {"text", "fused"}
    for v in variants.values():
        assert v["n_queries"] == report["n_queries"] and len(v["intervals"]["top1"]) == 2
        assert v["intervals"]["top1"][0] <= v["top1"] <= v["intervals"]["top1"][1]
    fusion = report["fusion_vs_image"]
    assert fusion["fused"] == "fused-gated" and fusion["image_model"] == image.version_id
    assert fusion["top1_gain"] == pytest.approx(variants["fused-gated"]["top1"] - report["top1"])
    assert 0 <= fusion["mcnemar"]["p_value"] <= 1
    # across the two listings of each unseen animal (no text shared: two people described it), the text still
    # separates look-alikes that the photos cannot
    cross = report["cross_listing"]
    assert cross["n_pairs"] == 8 and cross["n_queries"] == 48  # every photo of the 8 val animals, own listing left out
    assert set(cross["models"]) == {"model", "baseline", "text", "fused-gated"}
    gain = cross["fusion_vs_image"]
    assert gain["top1_fused"] == cross["models"]["fused-gated"]["top1"] > gain["top1_image"] + 0.15
    assert gain["mcnemar"]["p_value"] < 0.1  # 6 runs, seeds 0-5: gain 0.44-0.71, p <= 3e-4
    photo_only = variants["fused-gated"]["photo_only_query"]  # the finder's photo alone, listings with text
    assert photo_only["n_queries"] == report["n_queries"] and 0 <= photo_only["mcnemar_vs_image"]["p_value"] <= 1
    assert "text" not in variants or "photo_only_query" not in variants["text"]  # a text model needs the text
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "fused fused-gated" in markdown and "Fusion: best fused (fused-gated)" in markdown
    assert "Across listings of one animal (8 known lost/found pairs" in markdown


def test_search_with_text_and_photo(trained: dict, tmp_path: Path, capsys) -> None:
    from evaluation.search import SearchError, SearchIndex, build_index

    frame, registry = trained["frame"], trained["registry"]
    unseen = frame[frame.split == "val"]
    hits_text = hits_photo = 0
    for asked, answer in (("found", "lost"), ("lost", "found")):  # a finder asks the owners' listings, and back
        gallery = unseen[unseen.kind == answer].reset_index(drop=True)
        build_index(gallery, "latest-fused-gated", registry, tmp_path / f"idx-{answer}")
        index = SearchIndex.load(tmp_path / f"idx-{answer}", registry_root=registry)
        query = unseen[unseen.kind == asked].reset_index(drop=True)
        for row in query.itertuples():
            owner = f"t:{row.animal}-{answer}"
            hits_text += index.query(row.path, top_k=1, text=row.text)[0]["identity_id"] == owner
            hits_photo += index.query(row.path, top_k=1)[0]["identity_id"] == owner
    # 8 animals in look-alike quadruples, 48 queries: the asker's own description narrows them down (6 runs,
    # seeds 0-5: 36-44 with the text, 7-12 from the photo alone)
    assert hits_text >= 24 and hits_text >= hits_photo + 12, (hits_text, hits_photo)
    from petid_app.cli import main

    row = query.iloc[0]
    sheet = tmp_path / "sheet.png"
    search = ["search", row.path, "--index", str(tmp_path / "idx-found"), "--registry", str(registry),
              "--top-k", "2", "--sheet", str(sheet)]
    assert main([*search, "--text", row.text + " Звоните +7 916 123-45-67", "--json"]) == 0  # the phone is stripped
    cli = json.loads(capsys.readouterr().out)
    api = index.query(row.path, top_k=2, text=row.text)
    assert [r["identity_id"] for r in cli["results"]] == [r["identity_id"] for r in api]
    listing = ["search", "--listing", str(gallery.identity_id[0]), "--index", str(tmp_path / "idx-found")]
    assert main([*listing, "--text", "рыжая"]) == 2  # text describes the photos given, not a listing
    assert "give the PHOTOs too" in capsys.readouterr().err
    build_index(gallery, trained["image"].version_id, registry, tmp_path / "image-idx")
    with pytest.raises(SearchError, match="image-only model"):
        SearchIndex.load(tmp_path / "image-idx", registry_root=registry).query(query.path[0], text="рыжий")


def test_ablation_table_and_cli_errors(trained: dict, tmp_path: Path, capsys) -> None:
    from evaluation.ablation import ablation_configs, run_ablation
    from petid_app.cli import main

    frame = trained["frame"].copy()
    frame.loc[frame.split == "val", "split"] = ["val" if a < 20 else "test" for a in frame.loc[frame.split == "val", "animal"]]
    configs = ablation_configs(_config(), ["hashed-ngrams"], ["gated", "concat"])
    assert list(configs) == ["image", "text hashed-ngrams", "gated hashed-ngrams", "concat hashed-ngrams"]
    assert configs["concat hashed-ngrams"].fusion == "concat" and configs["text hashed-ngrams"].modality == "text"
    configs = {k: configs[k] for k in ("image", "gated hashed-ngrams")}
    result = run_ablation(frame, configs, trained["registry"], tmp_path / "ablation", known_pairs=KNOWN_PAIRS,
                          log=lambda _: None)
    rows = {r["model"]: r for r in result["rows"]}
    assert list(rows) == ["frozen backbone", "image", "gated hashed-ngrams"]
    assert all(r["cross_listing_top1"] is not None for r in rows.values())
    assert 0 <= rows["gated hashed-ngrams"]["mcnemar_p_vs_image"] <= 1 and rows["image"]["mcnemar_p_vs_image"] is None
    assert "| gated hashed-ngrams | fused |" in (tmp_path / "ablation" / "ablation.md").read_text()
    args = ["ablate", "--dataset", "manifest:" + str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "o")]
    assert main([*args, "--fusion", "gated,sum"]) == 2
    err = capsys.readouterr().err
    assert "unknown fusion(s) sum" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main([*args, "--encoders", "no-such-encoder"]) == 2
    assert "unknown text encoder" in capsys.readouterr().err


def _tiny_bert(directory: Path) -> Path:
    """A one-layer BERT with a character vocabulary, saved like a Hugging Face hub model (nothing downloaded)."""
    transformers = pytest.importorskip("transformers", reason="the Hugging Face path needs the hf extra")
    letters = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя0123456789"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", ".", ":", "query", *letters, *(f"##{c}" for c in letters)]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(vocab), encoding="utf-8")
    transformers.BertTokenizerFast(vocab_file=str(directory / "vocab.txt"), do_lower_case=True).save_pretrained(directory)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=80)
    transformers.BertModel(config).save_pretrained(directory)
    return directory


def test_a_hugging_face_encoder_trains_and_round_trips(trained: dict, tmp_path: Path) -> None:
    from training.embedder import load_embedder
    from training.text_encoders import HFTextEncoder
    from training.train import train_model

    bert = _tiny_bert(tmp_path / "tiny-bert")
    encoder = build_text_encoder(str(bert))
    assert isinstance(encoder, HFTextEncoder) and encoder.dim == 32
    ids = torch.from_numpy(encoder.tokenizer(["рыжая кошка, тел. 89161234567", None]))
    tokens, mask = encoder(ids)
    assert tokens.shape[:2] == mask.shape and mask[0].any() and not mask[1].any()  # no text: nothing attended
    frame, registry = trained["frame"], tmp_path / "models"
    result = train_model(frame, _config(modality="fused", text_encoder=str(bert), epochs=1), registry,
                         log=lambda _: None)
    embedder = load_embedder(result.version_id, registry)  # weights from safetensors, architecture from the dir
    assert embedder.modality == "fused" and isinstance(embedder.model.text, HFTextEncoder)
    paths, texts = list(frame.path[:4]), list(frame.text[:4])
    vectors = embedder.embed(paths, texts=texts)
    assert vectors.shape == (4, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.allclose(load_embedder(result.version_id, registry).embed(paths, texts=texts), vectors, atol=1e-5)
