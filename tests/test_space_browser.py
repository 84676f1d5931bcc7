"""The Space in a real browser: Debian chromium driven by Playwright uploads a database, asks, and sees rows.

The model is a canned stand-in (the page's wiring is under test, not the model's skill); SQLite, HTTP and the
browser are real. Set SENSE_SPACE_SCREENSHOT=/some/file.png to keep a screenshot of the page.
"""

import os
import shutil
from pathlib import Path

import pytest
from test_space import CannedGenerator

CHROMIUM = Path("/usr/bin/chromium")
QUESTION = "Which singers are from France?"
ANSWER_SQL = "SELECT name, age FROM singer WHERE country = 'France' ORDER BY age"
BROKEN = "What is the fee of each singer?"  # the canned model answers with a column that does not exist, twice
RENAMED = "List every singer id."  # the canned model spells the column its own way; repair renames it

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: install Debian's chromium package"),
]


@pytest.fixture
def space_url(tmp_path):
    from sense_hub.space import SpaceConfig, SQLAssistant, build_demo, launch_options

    config = SpaceConfig(timeout=2.0)
    canned = {QUESTION: [ANSWER_SQL], BROKEN: ["SELECT fee FROM singer"], RENAMED: ["SELECT singerid FROM singer"]}
    assistant = SQLAssistant(config, generator=CannedGenerator(canned))
    demo = build_demo(config, assistant=assistant, examples_root=tmp_path / "examples")
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options(config))
    yield url
    demo.close()


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def visible_cell(page, table_id: str, text: str):
    return page.locator(f"#{table_id}").get_by_role("gridcell").filter(has_text=text).filter(visible=True).first


def test_upload_ask_and_see_rows(space_url, page, tiny_db, tmp_path):
    from playwright.sync_api import expect

    page.goto(space_url)
    page.locator("#db-upload input[type=file]").set_input_files(str(tiny_db))
    expect(page.locator("#db-status")).to_contain_text("Loaded concert_singer: 2 tables")
    expect(page.locator("#schema")).to_contain_text("singer_id")
    expect(visible_cell(page, "preview", "Joe Sharp")).to_be_visible()

    page.locator("#question textarea").fill(QUESTION)
    page.locator("#ask").click()
    expect(visible_cell(page, "result", "Justin Brown")).to_be_visible()
    expect(visible_cell(page, "result", "John Nizinik")).to_be_visible()
    expect(page.locator("#sql")).to_contain_text("country = 'France'")
    expect(page.locator("#status")).to_contain_text("3 rows")

    # a bundled example: a click loads its database and its question
    page.get_by_text("How many books are there?").first.click()
    expect(page.locator("#db-status")).to_contain_text("Loaded bookshop")
    expect(page.locator("#question textarea")).to_have_value("How many books are there?")
    page.locator("#db-upload input[type=file]").set_input_files(str(tiny_db))
    expect(page.locator("#db-status")).to_contain_text("Loaded concert_singer")
    page.locator("#question textarea").fill(QUESTION)
    page.locator("#ask").click()
    expect(visible_cell(page, "result", "Rose White")).to_be_visible()

    shot = tmp_path / "space.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("SENSE_SPACE_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["SENSE_SPACE_SCREENSHOT"])


def test_bad_upload_shows_a_message_not_a_trace(space_url, page, tmp_path):
    from playwright.sync_api import expect

    fake = tmp_path / "fake.db"
    fake.write_text("not a database")
    page.goto(space_url)
    page.locator("#db-upload input[type=file]").set_input_files(str(fake))
    expect(page.locator("#db-status")).to_contain_text("fake.db is not an SQLite database")
    assert "Traceback" not in page.content()


def test_an_answer_that_fails_leaves_no_table_and_a_repair_is_reported(space_url, page, tiny_db):
    """After rows, a failing answer clears the result (no stale rows, no placeholder headers) and says why; an
    answer repaired by renaming its column says so in the status."""
    from playwright.sync_api import expect

    page.goto(space_url)
    page.locator("#db-upload input[type=file]").set_input_files(str(tiny_db))
    expect(page.locator("#db-status")).to_contain_text("Loaded concert_singer")
    page.locator("#question textarea").fill(QUESTION)
    page.locator("#ask").click()
    expect(visible_cell(page, "result", "Justin Brown")).to_be_visible()
    page.locator("#question textarea").fill(BROKEN)
    page.locator("#ask").click()
    expect(page.locator("#status")).to_contain_text("did not run")
    expect(page.locator("#status")).to_contain_text("first try failed: no such column: fee")
    cells = page.locator("#result").get_by_role("gridcell").filter(visible=True)
    headers = page.locator("#result").get_by_role("columnheader").filter(visible=True)
    expect(cells).to_have_count(0)
    assert not any(h.strip() in {"1", "2", "3"} for h in headers.all_inner_texts())
    page.locator("#question textarea").fill(RENAMED)
    page.locator("#ask").click()
    expect(page.locator("#status")).to_contain_text("fixed by renaming it")
    expect(page.locator("#sql")).to_contain_text("singer_id")
