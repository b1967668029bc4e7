"""The report: pianoroll.png with section marks, index.html with relative links, checked in Chromium."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from fakes import SMALL_SONG
from pipeline.config import parse_config
from pipeline.generate import generate_song
from pipeline.report import render_index

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.audio, self.img, self.href = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "audio":
            self.audio.append(a)
        elif tag == "img":
            self.img.append(a["src"])
        elif tag == "a":
            self.href.append(a["href"])


@pytest.fixture
def song_dir(tmp_path, fake_models):
    cfg = parse_config(json.loads(json.dumps(SMALL_SONG)), "small.yaml")
    return generate_song(cfg, tmp_path / "my song", models=fake_models)


def test_index_links_are_relative_and_exist(song_dir):
    text = (song_dir / "index.html").read_text()
    p = _Links()
    p.feed(text)
    assert [a["src"] for a in p.audio] == ["song.wav", "stems/lead.wav", "stems/keys.wav", "stems/drums.wav"]
    assert all("controls" in a for a in p.audio)
    assert p.img == ["pianoroll.png"] and p.href == ["song.mid", "song.json"]
    for link in [a["src"] for a in p.audio] + p.img + p.href:
        assert not re.match(r"^(/|[a-z]+:)", link), link
        assert (song_dir / unquote(link)).is_file(), link
    # the sections table and the facts
    assert text.count("<tr><td>verse</td>") == 2 and "<tr><td>chorus</td><td>5</td><td>2</td>" in text
    facts = json.loads((song_dir / "song.json").read_text())
    for name, n in facts["note_counts"].items():
        assert f"<tr><td>{name}</td><td>{n}</td></tr>" in text


def test_pianoroll_marks_sections(song_dir):
    import matplotlib.image as mpimg

    img = mpimg.imread(str(song_dir / "pianoroll.png"))
    assert img.ndim == 3 and img.shape[1] > 600
    red = (img[..., 0] > 0.7) & (img[..., 1] < 0.4) & (img[..., 2] < 0.4)
    cols = np.flatnonzero(red.sum(axis=0) > img.shape[0] * 0.3)  # tall red lines
    groups = np.split(cols, np.flatnonzero(np.diff(cols) > 2) + 1) if cols.size else []
    # sections start at bars 0, 4 and 6 of 10: the line at bar 0 lies under the axes' edge
    assert len(groups) == 2, [g.tolist() for g in groups]


def test_render_index_escapes_text():
    html = render_index({"title": "<b>&</b>", "note_counts": {"a<": 1}}, [], [("x", "a b.wav")], [], [])
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in html and 'src="a%20b.wav"' in html and "a&lt;" in html


@pytest.mark.browser
def test_index_in_headless_chromium(song_dir, tmp_path):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("chromium / chromedriver not installed")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tmp_path / "profile"
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.set_page_load_timeout(30)
        driver.get((song_dir / "index.html").as_uri())
        assert driver.title == "Small Song"
        srcs = driver.execute_script("return Array.from(document.querySelectorAll('audio')).map(a => a.src)")
        assert len(srcs) == 4
        for src in srcs:
            assert src.startswith("file://")
            assert Path(unquote(src[len("file://"):])).is_file(), src
        driver.execute_script("""
            window.__imgs = Promise.all(Array.from(document.images).map(i => i.complete ? 1 :
                new Promise(r => { i.onload = r; i.onerror = r; })));""")
        widths = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            window.__imgs.then(() => done(Array.from(document.images).map(i => i.naturalWidth)));""")
        assert widths and all(w > 0 for w in widths), widths
        rows = driver.execute_script("return document.querySelectorAll('#sections tr').length")
        assert rows == 1 + 3
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
