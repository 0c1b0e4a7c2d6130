"""The static review page: pairs side by side, escaped text, self-contained thumbnails, decisions shown."""

from pathlib import Path

from PIL import Image

from evaluation.review import ListingCard, write_review_page


def _photo(path: Path, colour: tuple[int, int, int]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (640, 480), colour).save(path, "JPEG")
    return str(path)


def test_the_page_shows_both_listings_with_thumbnails_and_escapes_text(tmp_path: Path) -> None:
    cards = {
        "pet911:rf1": ListingCard("pet911:rf1", kind="found", species="dog", date="2025-05-03", place="Химки",
                                  title="Найдена собака <b>", text="рыжий, ошейник & бирка", url="https://pet911.ru/x",
                                  photos=[_photo(tmp_path / "img" / "a.jpg", (200, 120, 40))]),
        "pet911:rl2": ListingCard("pet911:rl2", kind="lost", species="dog", date="2025-04-29",
                                  photos=[_photo(tmp_path / "img" / "b.jpg", (190, 110, 50)), "/missing/c.jpg"]),
    }
    rows = [{"pair_id": "p1", "query_id": "pet911:rf1", "candidate_id": "pet911:rl2", "rank": 1,
             "score": 0.91, "statement": "only 1 in 2,000 unrelated pairs scores this high", "distance_km": 4.2,
             "day_gap": 4, "rule": "distance"},
            {"pair_id": "p2", "query_id": "pet911:rf1", "candidate_id": "pet911:rl9", "rank": 2, "score": 0.4}]
    page = write_review_page(rows, cards, tmp_path / "review", decisions={"p2": "different"})
    text = page.read_text()
    assert "Найдена собака &lt;b&gt;" in text and "ошейник &amp; бирка" in text and "<b>" not in text
    assert "petid review decide pet911:rf1 pet911:rl2 same|different|unsure" in text
    assert "decided: different" in text and "4.2 km" in text and "1 in 2,000" in text
    thumbs = sorted((tmp_path / "review" / "thumbs").iterdir())
    assert [t.name for t in thumbs] == ["a.jpg", "b.jpg"]  # the missing photo is skipped, not fatal
    assert max(Image.open(thumbs[0]).size) <= 220
    assert 'src="thumbs/a.jpg"' in text and "http" not in text.replace("https://pet911.ru/x", "")
