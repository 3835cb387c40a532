"""Markdown and a self-contained HTML page (markdown-it-py; figures embedded as base64 PNG) from the same text."""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd

CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#f3f3f3}
tr:nth-child(even) td{background:#fafafa}code{background:#f3f3f3;padding:0 .2em}img{max-width:100%}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto}h2{border-bottom:1px solid #ddd;margin-top:1.6em}
.table-wrap{overflow-x:auto}figure{margin:1em 0}figcaption{font-size:.85em;color:#555}
nav.toc{background:#f6f8fa;border:1px solid #ddd;padding:.5em .8em;margin:1.2em 0;font-size:.9em}
.missing{color:#b00}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.table-wrap th:first-child,.table-wrap td:first-child{position:sticky;left:0;z-index:1;background:#fff;
box-shadow:inset -1px 0 #ccc}.table-wrap th:first-child{background:#f3f3f3}
.table-wrap td.verdict-flag{background:#f8d7da;color:#842029;font-weight:600}
.table-wrap td.verdict-pass{background:#d1e7dd;color:#0f5132}
tr.sig td{background:#fff3cd}tr.sig td:first-child{box-shadow:inset 4px 0 #e0a800}
th[data-sort]{cursor:pointer}th[data-sort]:hover{text-decoration:underline}
.takeaway{font-size:1.05em;background:#f6f8fa;border-left:4px solid #2c6fbb;padding:.6em .9em;margin:.8em 0}
details.fold{margin:.4em 0 .8em}details.fold>summary{cursor:pointer}
details.fold>summary>h3,details.fold>summary>span{display:inline;margin:0;font-size:1.05em}"""


def md_table(df: pd.DataFrame) -> str:
    if df is None or df.empty:
        return "_(no data)_\n"

    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    head = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


# a cell that holds a number (0.123, −0.5 [..], <0.001, 5 / 5, 1.2e-05, —): right-aligned
NUMERIC = re.compile(r"^(?:[−\-+]?(?:\d|\.\d)|<\s?\d|—$)")
SIGNIFICANT_COLUMN = re.compile(r"Holm|^significant", re.I)
# click a header to sort its table by that column (numbers as numbers, "−" read as a minus); again to reverse
SORT_JS = ("document.querySelectorAll('th[data-sort]').forEach(th=>th.addEventListener('click',()=>{"
           "const t=th.closest('table'),b=t.tBodies[0],i=[...th.parentNode.children].indexOf(th),"
           "d=th.dataset.sort==='asc'?-1:1;th.dataset.sort=d>0?'asc':'desc';"
           "const v=r=>{const s=(r.cells[i]||{}).innerText||'',n=parseFloat(s.replace('\\u2212','-')"
           ".replace('<',''));return isNaN(n)?s:n};"
           "[...b.rows].sort((x,y)=>{const p=v(x),q=v(y);return (typeof p==='number'&&typeof q==='number'?"
           "p-q:String(p).localeCompare(String(q)))*d}).forEach(r=>b.appendChild(r))}));")


def is_number(text: str) -> bool:
    """A cell that reads as a number (``0.123 [0.05, 0.20]``, ``0.000 (eps=0.25, 9.1 dB)``, ``5 / 5``, ``—``), not
    a sentence that starts with one."""
    bare = re.sub(r"\([^)]*\)|\[[^\]]*\]", "", text)
    return bool(NUMERIC.match(text)) and len(re.findall(r"[A-Za-z]", bare)) <= 4


def _p_value(text: str) -> float:
    """A p-value cell as a number (``<0.001`` → 0.0005); NaN when it is none."""
    text = text.strip()
    if text.startswith("<"):
        text = text.lstrip("< ")
        try:
            return float(text) / 2
        except ValueError:
            return float("nan")
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _mark_cells(tokens) -> None:
    """Table cells as a reader needs them: numbers right-aligned (``class="num"``), FLAG / PASS verdicts
    coloured, a row significant after Holm highlighted (``tr.sig``: a ``significant`` column saying yes, or
    a ``Holm`` column with p < 0.05), every header clickable to sort (``data-sort``)."""
    from .stats import ALPHA
    headers: list[str] = []
    row: list = []
    tr = None
    for i, tok in enumerate(tokens):
        if tok.type == "thead_open":
            headers = []
        elif tok.type == "th_open":
            headers.append(tokens[i + 1].content)
            tok.attrSet("data-sort", "")
        elif tok.type == "tr_open":
            tr, row = tok, []
        elif tok.type == "td_open":
            text = tokens[i + 1].content.strip()
            col = len(row)
            row.append(text)
            if col and is_number(text):
                tok.attrSet("class", "num")
            if text in ("FLAG", "PASS"):
                tok.attrSet("class", f"verdict-{text.lower()}")
        elif tok.type == "tr_close" and tr is not None and row:
            sig = any(k < len(row) and SIGNIFICANT_COLUMN.search(h) and
                      (row[k].lower() == "yes" or _p_value(row[k]) < ALPHA)
                      for k, h in enumerate(headers))
            if sig:
                tr.attrSet("class", "sig")
            tr = None


def fold(body: str) -> str:
    """Long parts folded (``<details>``), headings left visible: every ``###`` subsection (a table with its
    note and CSV link) opens on a click; so does a ``##`` section's own body when it holds more than three
    figures (spectrograms) and the definitions."""
    parts = re.split(r"(?=<h[23][ >])", body)
    out = []
    for part in parts:
        if not part.startswith(("<h2", "<h3")) or "</h" not in part:
            out.append(part)
            continue
        end = part.index("</h") + 5
        head, rest = part[:end], part[end:]
        if part.startswith("<h3"):
            out.append(f'<details class="fold"><summary>{head}</summary>\n{rest}</details>\n')
            continue
        n_img = rest.count("<img")
        if rest.strip() and (n_img > 3 or 'id="definitions"' in head):
            what = f"{n_img} figures" if n_img > 3 else "show"
            out.append(f'{head}<details class="fold"><summary><span>{what}</span></summary>\n{rest}</details>\n')
        else:
            out.append(part)
    return "".join(out)


def _slug(text: str, seen: set) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, i = base, 2
    while slug in seen:
        slug, i = f"{base}-{i}", i + 1
    seen.add(slug)
    return slug


def md_to_html(md: str, base: Path, title: str) -> str:
    """Render the report's Markdown with markdown-it-py (CommonMark + tables): figures are read from ``base``
    and embedded as data URIs (one self-contained file), an image alone in a paragraph becomes a
    ``<figure>`` with its caption, wide tables scroll, and a table of contents of the ``##`` sections follows
    the summary (the first section)."""
    from markdown_it import MarkdownIt

    mdi = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = mdi.parse(md)
    seen: set = set()
    toc = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.tag in ("h2", "h3"):
            text = tokens[i + 1].content
            tok.attrSet("id", _slug(text, seen))
            if tok.tag == "h2":
                toc.append((tok.attrGet("id"), text))
        if tok.type == "inline" and tok.children:
            only_image = [c for c in tok.children if c.type != "softbreak"]
            for child in tok.children:
                if child.type != "image":
                    continue
                src = child.attrGet("src") or ""
                path = base / src
                if path.is_file():
                    child.attrSet("src", "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode())
                else:
                    child.attrSet("data-missing", src)
            if len(only_image) == 1 and only_image[0].type == "image" and i > 0 \
                    and tokens[i - 1].type == "paragraph_open":
                tokens[i - 1].hidden = tokens[i + 1].hidden = True      # <figure> instead of <p>
                only_image[0].meta["figure"] = True

    def image(self, toks, idx, options, env):
        tok = toks[idx]
        alt = self.renderInlineAsText(tok.children or [], options, env)
        if tok.attrGet("data-missing"):
            return f'<p class="missing">missing figure {html.escape(tok.attrGet("data-missing"))}</p>'
        img = f'<img src="{tok.attrGet("src")}" alt="{html.escape(alt)}">'
        if tok.meta.get("figure"):
            return f"<figure>{img}<figcaption>{html.escape(alt)}</figcaption></figure>\n"
        return img

    _mark_cells(tokens)
    mdi.add_render_rule("image", image)
    mdi.add_render_rule("table_open", lambda self, toks, idx, options, env: '<div class="table-wrap"><table>\n')
    mdi.add_render_rule("table_close", lambda self, toks, idx, options, env: "</table></div>\n")
    body = mdi.renderer.render(tokens, mdi.options, {})
    if len(toc) > 1:       # after the first section (the summary)
        nav = ('<nav class="toc"><strong>Contents:</strong> '
               + " · ".join(f'<a href="#{i}">{html.escape(t)}</a>' for i, t in toc[1:]) + "</nav>\n")
        second = body.find(f'<h2 id="{toc[1][0]}"')
        body = body[:second] + nav + body[second:]
    body = fold(body).replace("<p><strong>Takeaway", '<p class="takeaway" id="takeaway"><strong>Takeaway', 1)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>\n{body}<script>{SORT_JS}</script></body></html>\n")
