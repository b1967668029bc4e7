"""The song report: ``pianoroll.png`` (tracks, section boundaries) and ``index.html``.

``index.html`` uses relative links only, so the output folder can be moved or served as is: an
``<audio controls>`` for the song and for each stem, an ``<img>`` for each picture, a table of the
sections and the facts of ``song.json`` (seed, device, weights, note counts, timings).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

import numpy as np

from pipeline.fileio import atomic_write_text, save_png


def plot_pianoroll(mt, path: str | Path, sections: Sequence[dict[str, Any]] = (), title: str = "") -> Path:
    """Draw a Multitrack as a PNG with the section boundaries marked; written atomically.

    Draws with ``symbolic.plot.draw_multitrack`` (one panel per track, time in bars), then a red
    line and the section's name at the first bar of each section.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        from symbolic.plot import draw_multitrack
    except ImportError:  # pragma: no cover - symbolic.plot ships with the package
        draw_multitrack = None
    fig = draw_multitrack(mt, title=title or None) if draw_multitrack is not None else _draw(mt, plt)
    for ax in fig.axes:  # x axis in bars in both drawings
        for s in sections:
            ax.axvline(s["start_bar"], color="tab:red", linewidth=1.6, alpha=0.9)
    if sections and fig.axes:
        ax = fig.axes[0]
        for s in sections:
            ax.text(s["start_bar"] + 0.1, 0.97, s["name"], transform=ax.get_xaxis_transform(), fontsize=9,
                    color="tab:red", va="top", fontweight="bold", parse_math=False)
    if title and draw_multitrack is None:
        fig.suptitle(title, parse_math=False)
    path = Path(path)
    try:
        save_png(fig, path, dpi=100)
    finally:
        plt.close(fig)
    return path


def _draw(mt, plt):
    roll = mt.roll  # [tracks, bars, steps, pitches]
    T, B, S, P = roll.shape
    fig, axes = plt.subplots(T, 1, figsize=(12, 1.4 * T + 0.8), sharex=True, squeeze=False)
    for t, ax in enumerate(axes[:, 0]):
        img = (roll[t].reshape(B * S, P).T > 0).astype(np.float32)
        ax.imshow(img, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
                  extent=(0, B, mt.grid.lowest_pitch - 0.5, mt.grid.lowest_pitch + P - 0.5))
        ax.set_ylabel(mt.track_names[t], rotation=0, ha="right", fontsize=8, parse_math=False)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("bar")
    fig.subplots_adjust(left=0.1, right=0.98, top=0.9, bottom=0.12, hspace=0.15)
    return fig


def _rel(path: str) -> str:
    return quote(path, safe="/")


def render_index(facts: dict[str, Any], sections: Sequence[dict[str, Any]], audio: Sequence[tuple[str, str]],
                 pictures: Sequence[tuple[str, str]], files: Sequence[str]) -> str:
    """The HTML text of ``index.html``.

    Args:
        facts: the song.json facts.
        sections: rows of the sections table (name, start_bar, bars, start_s, end_s, chords, ...).
        audio: (label, relative path) of each audio file; song first.
        pictures: (caption, relative path) of each picture.
        files: other relative paths to link (song.mid, song.json).
    """
    e = html.escape
    title = e(str(facts.get("title", "song")))
    rows = []
    for s in sections:
        chords = " ".join(s.get("chords") or []) or "-"
        rows.append(f"<tr><td>{e(s['name'])}</td><td>{s['start_bar'] + 1}</td><td>{s['bars']}</td>"
                    f"<td>{s['start_s']:.2f}</td><td>{s['end_s']:.2f}</td><td>{e(chords)}</td>"
                    f"<td>{s.get('variation', 0):g}</td><td>{s.get('morph', 0):g}</td>"
                    f"<td>{e(str(s['style'])) if s.get('style') is not None else '-'}</td></tr>")
    players = "\n".join(f'<figure><figcaption>{e(label)}</figcaption><audio controls preload="none" '
                        f'src="{_rel(p)}"></audio></figure>' for label, p in audio)
    imgs = "\n".join(f'<figure><img src="{_rel(p)}" alt="{e(c)}"><figcaption>{e(c)}</figcaption></figure>'
                     for c, p in pictures)
    links = " · ".join(f'<a href="{_rel(f)}">{e(f)}</a>' for f in files)
    counts = facts.get("note_counts", {})
    count_rows = "".join(f"<tr><td>{e(k)}</td><td>{v}</td></tr>" for k, v in counts.items())
    fact_rows = []
    for key in ("seed", "device", "renderer", "tempo", "bars", "duration_s", "sample_rate"):
        if facts.get(key) is not None:
            fact_rows.append(f"<tr><th>{e(key)}</th><td>{e(str(facts[key]))}</td></tr>")
    for k, v in (facts.get("timings") or {}).items():
        fact_rows.append(f"<tr><th>{e(k)}</th><td>{v}</td></tr>")
    for k, w in (facts.get("weights") or {}).items():
        fact_rows.append(f"<tr><th>weights {e(k)}</th><td>{e(Path(w['path']).name)} "
                         f"<code>sha256 {e(w['sha256'][:16])}…</code></td></tr>")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1200px; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }}
figure {{ margin: 0.5em 0; }}
img {{ max-width: 100%; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{links}</p>
<h2>Listen</h2>
{players or "<p>No audio was rendered (renderer none).</p>"}
<h2>Pictures</h2>
{imgs}
<h2>Structure</h2>
<table id="sections">
<tr><th>section</th><th>first bar</th><th>bars</th><th>start (s)</th><th>end (s)</th><th>chords</th>
<th>variation</th><th>morph</th><th>drums' style</th></tr>
{"".join(rows)}
</table>
<h2>Notes per track</h2>
<table id="notes"><tr><th>track</th><th>notes</th></tr>{count_rows}</table>
<h2>Facts</h2>
<table id="facts">{"".join(fact_rows)}</table>
</body>
</html>
"""


def write_report(folder: str | Path, *, mt, sections: Sequence[dict[str, Any]], facts: dict[str, Any],
                 audio_ext: str | None = ".wav") -> None:
    """Write ``pianoroll.png`` and ``index.html`` into ``folder`` (which holds the song's other files).

    Args:
        mt: the song's ``symbolic.roll.Multitrack``.
        sections: see :func:`pipeline.generate.section_table`.
        facts: the song.json facts (shown in the page).
        audio_ext: ".wav" / ".flac" of song and stems, or None when no audio was rendered.
    """
    folder = Path(folder)
    plot_pianoroll(mt, folder / "pianoroll.png", sections, title=str(facts.get("title", "")))
    audio: list[tuple[str, str]] = []
    if audio_ext is not None:
        audio.append(("song", f"song{audio_ext}"))
        audio += [(f"stem: {name}", f"stems/{name}{audio_ext}") for name in mt.track_names]
    pictures = [("pianoroll", "pianoroll.png")]
    files = ["song.mid", "song.json"]
    atomic_write_text(folder / "index.html", render_index(facts, sections, audio, pictures, files))


def load_facts(folder: str | Path) -> dict[str, Any]:
    """The song.json of an output folder."""
    return json.loads((Path(folder) / "song.json").read_text(encoding="utf-8"))
