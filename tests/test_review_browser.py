"""The demo's review page opens in headless Chromium with its candidate photos visible (Debian's ``chromium``,
driven over the DevTools protocol; skips with the reason when no Chromium is installed)."""

import io
from pathlib import Path

import pytest
import ui_support

pytestmark = pytest.mark.slow


def test_the_review_page_shows_candidate_pairs_with_their_photos(tmp_path_factory: pytest.TempPathFactory,
                                                                tmp_path: Path) -> None:
    from PIL import Image

    binary = ui_support.find_chromium()
    if binary is None:
        pytest.skip("no Chromium: install Debian's `chromium` (apt-get install -y chromium; .ci/run does)")
    page_path = ui_support.demo_home(tmp_path_factory) / "review" / "index.html"
    assert page_path.exists(), "the demo wrote no review page"
    with ui_support.chromium_page(binary) as page:
        page.goto(page_path.as_uri())
        images = page.wait_for("(() => { const imgs = [...document.querySelectorAll('.pair img')];"
                               " return imgs.length && imgs.every(i => i.complete) ? imgs.map(i => i.naturalWidth)"
                               " : null; })()", timeout_s=30)
        assert images and min(images) > 0, f"review page images did not load: {images}"
        pairs = page.evaluate("document.querySelectorAll('.pair').length")
        assert pairs >= 1 and "petid review decide" in page.evaluate("document.body.innerText")
        shot = Image.open(io.BytesIO(page.screenshot(tmp_path / "review.png"))).convert("L")
    low, high = shot.getextrema()
    assert high - low > 64 and len(shot.getcolors(maxcolors=1 << 16) or []) > 8, "the screenshot is blank"
