"""Keyword selection: word starts, ё/е folding, species/kind guesses, exclusions, configurable vocabulary."""

from __future__ import annotations

from pathlib import Path

import pytest

from scrapers.telegram.keywords import Vocabulary, classify


@pytest.mark.parametrize("text", ["Пропала кошка", "нашли кошку у подъезда", "Потерялся котик!", "Пропал кот",
                                  "найден пёс", "Найден пес", "Потерялась собака"])
def test_animal_words_select(text: str) -> None:
    assert classify(text).selected


@pytest.mark.parametrize("text", ["ул. Коштоянца перекрыта на ремонт", "Который час?", "Котировки акций",
                                  "Собрание жильцов в пятницу", ""])
def test_word_starts_do_not_match_inside_other_words(text: str) -> None:
    match = classify(text)
    assert not match.selected and match.species is None


def test_kosh_entry_never_matches_koshtoyantsa() -> None:
    vocab = Vocabulary.from_dict({"cat": ["кош", "кошк*"]})
    assert classify("Пробка на Коштоянца", vocab).species is None
    assert classify("Пропала кошка на Коштоянца", vocab).species == "cat"


@pytest.mark.parametrize(("text", "species", "kind"), [
    ("Потерялась кошка! ул. Коштоянца, 5", "cat", "lost"),
    ("Найдена собака, ищем хозяина", "dog", "found"),
    ("Ищем хозяина! Найден щенок", "dog", "found"),
    ("Пёс убежал с дачи", "dog", "lost"),
    ("Lost dog near the park", "dog", "lost"),
    ("Found a kitten on Main St.", "cat", "found"),
    ("Пропал попугай", "other", "lost"),
    ("Видели кошку?", "cat", None),
])
def test_species_and_kind(text: str, species: str, kind: str | None) -> None:
    match = classify(text)
    assert (match.selected, match.species, match.kind) == (True, species, kind)


@pytest.mark.parametrize(("text", "reason"), [
    ("Котёнок в добрые руки, приучен к лотку", "adoption"),
    ("Пристраиваем щенков, ищут дом", "adoption"),
    ("Kittens for adoption", "adoption"),
    ("Продам щенков хаски", "sale"),
    ("Продаю переноску для кошки", "sale"),
    ("Puppies for sale", "sale"),
    ("Нашёлся, спасибо всем!", "reunited"),
    ("Кот нашелся, спасибо за репосты", "reunited"),
    ("Thank you, found!", "reunited"),
    ("Спасибо всем, потеряшки вернулись домой", "reunited"),
])
def test_exclusions(text: str, reason: str) -> None:
    match = classify(text)
    assert not match.selected and match.excluded_by == reason


def test_yo_folding_both_ways() -> None:
    vocab = Vocabulary.from_dict({"dog": ["пес"]})
    assert classify("Пёс потерялся", vocab).species == "dog"
    vocab = Vocabulary.from_dict({"dog": ["пёс"]})
    assert classify("Пес потерялся", vocab).species == "dog"


def test_vocabulary_from_yaml_and_bad_keys(tmp_path: Path) -> None:
    path = tmp_path / "vocab.yaml"
    path.write_text("lost: [verloren]\ndog: [hund*]\nthanks_window: 2\n", encoding="utf-8")
    vocab = Vocabulary.from_yaml(path)
    assert classify("Hund verloren", vocab).selected and vocab.thanks_window == 2
    assert classify("Lost dog", vocab).kind is None  # overridden lists replace the defaults
    with pytest.raises(ValueError, match=r"unknown vocabulary keys \['kats'\]"):
        Vocabulary.from_dict({"kats": ["x"]})
    with pytest.raises(ValueError, match="must be a list"):
        Vocabulary.from_dict({"cat": "кошка"})
