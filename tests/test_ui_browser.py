"""The demo's assets in a real browser: headless Chromium on the Dagster UI (``petid ui --sample``) renders the
identity statistics table and the pictures in the assets' Markdown metadata, and the pages are not blank."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ui_support
from ui_support import Page

pytestmark = pytest.mark.slow

PAGE_TIMEOUT_S = 90.0

# The first-visit "Join the Dagster community" modal (and any similar one): click its dismissing button.
DISMISS = """(() => {
  const labels = new Set(["skip", "dismiss", "close", "not now", "no thanks", "got it", "maybe later"]);
  let clicked = 0;
  for (const dialog of document.querySelectorAll('[role=dialog]')) {
    if (dialog.querySelector('.dagster-markdown')) continue;  // a metadata dialog we opened ourselves
    const button = [...dialog.querySelectorAll('button')].find(b => labels.has(b.innerText.trim().toLowerCase()));
    if (button) { button.click(); clicked++; }
  }
  return clicked;
})()"""
METADATA_LOADED = "document.body.innerText.includes('Metadata') && !!document.querySelector('table td')"
STATS_TABLE = """(() => {
  const table = [...document.querySelectorAll('table')].find(t =>
    ['Source', 'Identities', 'Photos'].every(h => t.innerText.includes(h)) &&
    [...t.querySelectorAll('td')].some(td => td.innerText.trim() === 'total'));
  if (table) table.scrollIntoView({block: 'center'});
  return !!table;
})()"""
# loaded pictures: inline in the page, or in a metadata dialog ("[Show Markdown]" for long Markdown values)
LOADED_IMAGES = """JSON.stringify([...document.images].filter(i => i.complete && i.naturalWidth > 0)
  .map(i => ({src: i.src.slice(0, 40), width: i.naturalWidth, in_dialog: !!i.closest('[role=dialog]')})))"""
SHOW_MARKDOWN = "[...document.querySelectorAll('a')].filter(a => a.innerText.trim() === '[Show Markdown]')"


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = ui_support.find_chromium()
    if binary is None:
        pytest.skip("no Chromium: install Debian's `chromium` (apt-get install -y chromium; .ci/run does) "
                    "or point PETID_CHROMIUM at a Chrome binary")
    return binary


@pytest.fixture(scope="module")
def ui(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, chromium: str) -> str:
    return ui_support.shared_ui(request, ui_support.demo_home(tmp_path_factory))


@pytest.fixture(scope="module")
def page(chromium: str) -> Iterator[Page]:
    with ui_support.chromium_page(chromium) as page:
        yield page


def _open_asset(page: Page, ui: str, key: str) -> None:
    page.goto(f"{ui}/assets/{key}")
    loaded = page.wait_for(METADATA_LOADED, timeout_s=PAGE_TIMEOUT_S)
    assert loaded, f"the asset page of {key} did not show its metadata in {PAGE_TIMEOUT_S}s"
    page.wait_for(DISMISS, timeout_s=3.0)  # the modal may come a moment after the page
    page.evaluate(DISMISS)


def _assert_not_blank(page: Page, path: Path) -> None:
    from PIL import Image

    image = Image.open(io.BytesIO(page.screenshot(path))).convert("L")
    low, high = image.getextrema()
    colours = image.getcolors(maxcolors=1 << 16) or []
    assert high - low > 64 and len(colours) > 8, f"the screenshot {path} is blank (grey levels {low}..{high})"


def test_identity_stats_table_is_rendered(ui: str, page: Page, tmp_path: Path) -> None:
    _open_asset(page, ui, "identity_stats")
    assert page.wait_for(STATS_TABLE, timeout_s=30.0), "identity_stats' table_2 (with its total row) is not rendered"
    time.sleep(0.5)  # scrolled into view
    _assert_not_blank(page, tmp_path / "identity_stats.png")


def test_a_picture_in_the_metadata_loads(ui: str, page: Page, tmp_path: Path) -> None:
    """A photo grid or plot (data-URI images in Markdown metadata) loads on evaluation_report or
    deduplicated_images: inline, or in the dialog its "[Show Markdown]" opens."""
    loaded: dict[str, list] = {}
    for key in ("evaluation_report", "deduplicated_images"):
        _open_asset(page, ui, key)
        images = json.loads(page.wait_for(f"(x => x !== '[]' && x)({LOADED_IMAGES})", timeout_s=5.0) or "[]")
        for index in range(page.evaluate(f"{SHOW_MARKDOWN}.length") if not images else 0):
            page.evaluate(f"{SHOW_MARKDOWN}[{index}].click()")
            images = json.loads(page.wait_for(f"(x => x !== '[]' && x)({LOADED_IMAGES})", timeout_s=15.0) or "[]")
            if images:
                time.sleep(1.0)  # let the dialog finish fading in before the screenshot
                break
            page.send("Input.dispatchKeyEvent", type="keyDown", key="Escape", code="Escape",
                      windowsVirtualKeyCode=27)
        _assert_not_blank(page, tmp_path / f"{key}.png")
        loaded[key] = images
        print(f"{key}: {len(images)} picture(s) loaded: {images[:3]}")
    assert any(loaded.values()), f"no picture loaded on {', '.join(loaded)}: {loaded}"
