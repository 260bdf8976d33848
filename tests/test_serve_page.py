"""The page in a real browser: Debian's chromium driven by playwright (never a downloaded browser).

Skipped only when chromium or playwright is missing outside CI; in CI (CI=true) that fails.
Screenshots go to the test's tmp_path; set EMOVOX_PAGE_SCREENSHOT=docs/serve.png to keep one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import soundfile as sf

from .serve_util import ANGRY, KEY, conversation, write_wav

CHROMIUM = "/usr/bin/chromium"
QUIET_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run", "--disable-default-apps", "--disable-extensions"]


def _need_browser():
    reason = None
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is missing (pip install -e '.[test]')"
    if reason and os.environ.get("CI") == "true":
        pytest.fail(f"browser test cannot run in CI: {reason}")
    if reason:
        pytest.skip(reason)


def _wait(page, expression: str, timeout: float = 30.0) -> None:
    """Poll a JavaScript expression until true (``wait_for_function`` evaluates strings inside the
    page, which its Content-Security-Policy rightly forbids)."""
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(50)


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory) -> Path:
    """What the fake microphone plays: the angry example clip, 16-bit PCM WAV."""
    x, rate = sf.read(str(ANGRY), dtype="float32")
    return write_wav(tmp_path_factory.mktemp("mic") / "mic.wav", x, rate)


@pytest.fixture(scope="module")
def browser(mic_wav):
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=QUIET_ARGS + [
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic_wav}"])
        yield b
        b.close()


@pytest.fixture()
def page(browser, serve_url):
    """A fresh page on the server's /; any request that is not to the server is aborted and
    recorded."""
    context = browser.new_context(viewport={"width": 900, "height": 1000})
    elsewhere = []
    server = urlparse(serve_url).netloc

    def guard(route):
        url = urlparse(route.request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.netloc != server:
            elsewhere.append(route.request.url)
            return route.abort()
        return route.continue_()

    context.route("**/*", guard)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(serve_url + "/")
    page.wait_for_selector("#key-box[open]")  # the first call found out a key is needed
    yield page
    context.close()
    assert not elsewhere, f"the page tried to reach {elsewhere}"
    assert not errors, errors


def enter_key(page) -> None:
    page.fill("#api-key", KEY)
    page.keyboard.press("Tab")  # 'change' → the page asks for the model's description again
    _wait(page, "document.getElementById('model-id').textContent.includes('@')")


def focused(page) -> str:
    return page.evaluate("document.activeElement.id || document.activeElement.className "
                         "|| document.activeElement.tagName")


def test_upload_with_the_keyboard_shows_bars(page, tmp_path):
    # listening early: interception set up at the moment the dialog opens can miss it
    page.on("filechooser", lambda chooser: chooser.set_files(str(ANGRY)))
    order = []
    for _ in range(5):  # skip link, the two buttons, the key box, its field
        page.keyboard.press("Tab")
        order.append(focused(page))
    assert order == ["skip", "choose", "record", "SUMMARY", "api-key"]
    page.keyboard.type(KEY)
    for _ in range(3):
        page.keyboard.press("Shift+Tab")
    assert focused(page) == "choose"
    _wait(page, "document.getElementById('model-id').textContent.includes('@')")  # the key was taken
    page.keyboard.press("Enter")  # opens the file chooser (intercepted since the start of the test)
    page.wait_for_selector("#bars li", timeout=30_000)
    assert page.text_content("#answer") == "angry"
    assert page.locator("#bars li").count() == 8
    top = page.locator("#bars li").first
    assert top.locator(".name").inner_text() == "angry"
    _wait(page, "parseFloat(document.querySelector('#bars li .fill').style.width) > 50")
    assert page.evaluate("document.getElementById('spectrogram-img').naturalWidth") > 100
    assert page.evaluate("document.activeElement.id") == "result-title"  # focus moves to the answer
    assert page.text_content("#meta").startswith("3.4 s of audio; answered in ")  # speech seconds not measured
    assert page.locator("#timeline").is_hidden()  # one clip: no timeline
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)


def test_long_recording_timeline_and_messages(page, tmp_path):
    enter_key(page)
    long = conversation(tmp_path / "conversation.wav")
    page.set_input_files("#file", str(long))
    page.wait_for_selector("#timeline:not([hidden])", timeout=60_000)
    assert page.text_content("#timeline-note") == ""  # each window on its own: nothing to say
    assert page.locator("#track span").count() >= 3
    items = page.locator("#segments li").all_inner_texts()
    assert any("silence" in t for t in items) and any("%" in t for t in items)
    page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)
    keep = os.environ.get("EMOVOX_PAGE_SCREENSHOT")  # the README's picture, made on demand only
    if keep:
        shutil.copy(tmp_path / "timeline.png", keep)

    page.set_input_files("#file", str(write_wav(tmp_path / "quiet.wav", np.zeros(16_000 * 2))))
    _wait(page, "document.getElementById('status').textContent.includes('No speech')")
    assert "error" in page.get_attribute("#status", "class")

    (tmp_path / "notes.wav").write_bytes(b"not audio at all" * 10)
    page.set_input_files("#file", str(tmp_path / "notes.wav"))
    _wait(page, "document.getElementById('status').textContent.includes('does not look like audio')")


def test_one_speaker_timeline_is_judged_against_the_recordings_own_voice(page, tmp_path):
    """The box asks for a speaker-adaptive timeline (?speaker_norm=1): the recording is its own
    speaker's reference, and the page says so."""
    enter_key(page)
    urls = []
    page.on("request", lambda r: urls.append(r.url) if "/v1/timeline" in r.url else None)
    assert not page.is_checked("#one-speaker")
    page.check("#one-speaker")
    page.set_input_files("#file", str(conversation(tmp_path / "conversation.wav")))
    page.wait_for_selector("#timeline:not([hidden])", timeout=60_000)
    assert len(urls) == 1 and urls[0].endswith("/v1/timeline?speaker_norm=1")
    assert "own voice" in page.text_content("#timeline-note")
    assert page.locator("#segments li").count() >= 2


def test_a_label_set_of_ticked_emotions(page, tmp_path):
    """Unticking emotions asks for an answer among the rest (?emotions=): the bars and the
    timeline show those only; fewer than two ticked is refused on the page."""
    enter_key(page)
    urls = []
    page.on("request", lambda r: urls.append(r.url) if "/v1/" in r.url and "/v1/model" not in r.url else None)
    page.click("#emotions-box summary")
    assert page.locator("#emotions input:checked").count() == 8
    for label in ("calm", "fearful", "disgust", "surprised"):
        page.uncheck(f"#emotions input[value={label}]")
    page.set_input_files("#file", str(conversation(tmp_path / "conversation.wav")))
    page.wait_for_selector("#timeline:not([hidden])", timeout=60_000)
    assert urls[0].endswith("/v1/predict?spectrogram=true&emotions=neutral,happy,sad,angry")
    assert urls[1].endswith("/v1/timeline?emotions=neutral,happy,sad,angry")
    assert sorted(page.locator("#bars li .name").all_inner_texts()) == ["angry", "happy", "neutral", "sad"]
    kinds = {t.split(": ")[1].split(" (")[0] for t in page.locator("#segments li").all_inner_texts()}
    assert kinds <= {"angry", "happy", "neutral", "sad", "silence"}

    for label in ("neutral", "happy", "sad"):
        page.uncheck(f"#emotions input[value={label}]")
    page.set_input_files("#file", str(ANGRY))
    _wait(page, "document.getElementById('status').textContent.includes('two or more')")
    page.click("#record")  # refused before recording, not after: nothing recorded to lose
    assert page.get_attribute("#record", "aria-pressed") == "false"
    assert len(urls) == 2  # nothing sent


def test_fake_microphone_recording(page, tmp_path):
    enter_key(page)
    page.focus("#record")
    page.keyboard.press("Enter")
    _wait(page, "document.getElementById('record').getAttribute('aria-pressed') === 'true'")
    page.wait_for_timeout(3500)
    page.keyboard.press("Enter")  # Stop
    page.wait_for_selector("#bars li", timeout=30_000)
    assert page.locator("#bars li").count() == 8
    assert page.text_content("#answer") in {"neutral", "calm", "happy", "sad", "angry", "fearful", "disgust",
                                          "surprised", "uncertain"}
    page.screenshot(path=str(tmp_path / "recorded.png"), full_page=True)
