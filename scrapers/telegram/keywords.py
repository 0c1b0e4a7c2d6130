"""Keyword matching for animal posts (Russian and English).

Text is lower-cased, ``ё`` folded to ``е`` and split into word tokens. A vocabulary entry is one or more words;
each word matches a whole token (``кот``) or, ending in ``*``, a token that STARTS with it (``кошк*`` matches
"кошка", "кошку"). Matching is anchored at word starts, so the street "Коштоянца" matches neither ``кош`` nor
``кошк*``, and ``кот`` does not match "который". Multi-word entries (``добр* рук*``) match consecutive tokens.

A post is selected when it mentions a lost, found or species word and no exclusion: adoption, sale, "reunited"
phrases, or a thanks word within ``thanks_window`` tokens of a found/reunited word ("нашёлся, спасибо").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

_WORD = re.compile(r"\w+", re.UNICODE)


def fold(text: str) -> str:
    """Lower-case and fold ё→е (the two are used interchangeably in Russian posts)."""
    return text.lower().replace("ё", "е")


def tokens(text: str) -> list[str]:
    return _WORD.findall(fold(text))


def _default(*words: str) -> Any:
    return field(default_factory=lambda: list(words))


@dataclass
class Vocabulary:
    """Configurable word lists; load overrides with :meth:`from_dict` / :meth:`from_yaml`."""

    cat: list[str] = _default(
        "кот", "кота", "коту", "котом", "коты", "котов", "котик*", "котен*", "котят*", "котэ", "кошк*", "кошеч*",
        "кошак*", "киса", "кису", "кисуля", "cat", "cats", "kitten*", "kitty")
    dog: list[str] = _default(
        "собак*", "собачк*", "собачон*", "пес", "пса", "псу", "псом", "песик*", "щен*", "пёс", "кобел*", "сука", "суку", "сучк*",
        "овчарк*", "хаски", "терьер*", "dog", "dogs", "pupp*", "puppy", "doggy")
    other: list[str] = _default(
        "попуга*", "хомяк*", "кролик*", "черепах*", "хорек*", "шиншилл*", "крыс*", "parrot*", "rabbit*", "hamster*",
        "ferret*", "turtle*")
    lost: list[str] = _default(
        "пропал*", "потерял*", "потеря*", "потеряшк*", "убежал*", "сбежал*", "ушел из дома", "ушла из дома",
        "выпал*", "ищем", "ищу", "разыскива*", "помогите найти", "lost", "missing", "ran away", "runaway")
    found: list[str] = _default(
        "найден*", "нашли", "нашла", "нашел", "подобрал*", "подобран*", "прибил*", "приблуд*", "ищем хозя*",
        "ищет хозя*", "ищут хозя*", "found", "stray")
    adoption: list[str] = _default(
        "в добр* рук*", "в хорош* рук*", "в надежн* рук*", "пристраива*", "пристрой*", "ищет дом", "ищут дом",
        "ищет новый дом", "ищет семью", "отдам", "отдаю", "отдадим", "adopt*", "rehom*", "forever home")
    sale: list[str] = _default(
        "продам", "продаю", "продаем", "прода*", "куплю", "for sale", "sell*", "selling")
    reunited: list[str] = _default(
        "нашелся", "нашлась", "нашлись", "вернул* домой", "домой вернул*", "уже дома", "reunited",
        "back home")
    thanks: list[str] = _default("спасибо", "благодар*", "thank*", "thanks")
    thanks_window: int = 4  # tokens between a thanks word and a found/reunited word

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocabulary:
        """Defaults overridden by ``data``'s keys (lists of entries, or ``thanks_window``)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown vocabulary keys {unknown}; known: {sorted(known)}")
        for key, value in data.items():
            if key != "thanks_window" and (isinstance(value, str) or not isinstance(value, Iterable)):
                raise ValueError(f"vocabulary key {key!r} must be a list of words, got {value!r}")
        return cls(**{k: (list(v) if k != "thanks_window" else int(v)) for k, v in data.items()})

    @classmethod
    def from_yaml(cls, path: str | Path) -> Vocabulary:
        import yaml

        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: a vocabulary YAML must be a mapping of lists")
        return cls.from_dict(data)


@dataclass(frozen=True)
class Match:
    """What the text says: whether the post is selected, why not, the species and lost/found guesses."""

    selected: bool
    species: str | None  # "cat" | "dog" | "other" | None
    kind: str | None  # "lost" | "found" | None
    excluded_by: str | None = None  # "adoption" | "sale" | "reunited" | None
    reason: str = ""


def _compile(entry: str) -> list[tuple[str, bool]]:
    return [(word.rstrip("*"), word.endswith("*")) for word in fold(entry).split()]


def _positions(toks: list[str], entries: Iterable[str]) -> list[int]:
    """Token indices where any entry starts matching."""
    hits = []
    for entry in entries:
        pattern = _compile(entry)
        if not pattern:
            continue
        for i in range(len(toks) - len(pattern) + 1):
            if all(toks[i + j].startswith(w) if prefix else toks[i + j] == w
                   for j, (w, prefix) in enumerate(pattern)):
                hits.append(i)
    return sorted(hits)


def classify(text: str | None, vocabulary: Vocabulary | None = None) -> Match:
    """Classify one post's text (caption of a post or album)."""
    vocab = vocabulary or Vocabulary()
    toks = tokens(text or "")
    hits = {name: _positions(toks, getattr(vocab, name)) for name in
            ("cat", "dog", "other", "lost", "found", "adoption", "sale", "reunited", "thanks")}
    species = None
    scored = [(len(hits[s]), -hits[s][0], s) for s in ("cat", "dog", "other") if hits[s]]
    if scored:
        species = max(scored)[2]
    kind = None
    if hits["lost"] or hits["found"]:
        first_lost = hits["lost"][0] if hits["lost"] else len(toks)
        first_found = hits["found"][0] if hits["found"] else len(toks)
        kind = "lost" if first_lost < first_found else "found"
    excluded_by = None
    if hits["adoption"]:
        excluded_by = "adoption"
    elif hits["sale"]:
        excluded_by = "sale"
    elif hits["reunited"] or any(
        abs(t - f) <= vocab.thanks_window for t in hits["thanks"] for f in hits["found"]
    ):
        excluded_by = "reunited"
    if excluded_by:
        return Match(False, species, kind, excluded_by, f"excluded: {excluded_by}")
    if not (species or kind):
        return Match(False, None, None, None, "no animal, lost or found words")
    return Match(True, species, kind, None, "selected")
