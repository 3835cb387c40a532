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
.missing{color:#b00}"""


def md_table(df: pd.DataFrame) -> str:
    if df is None or df.empty:
        return "_(no data)_\n"

    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    head = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


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

    mdi.add_render_rule("image", image)
    mdi.add_render_rule("table_open", lambda self, toks, idx, options, env: '<div class="table-wrap"><table>\n')
    mdi.add_render_rule("table_close", lambda self, toks, idx, options, env: "</table></div>\n")
    body = mdi.renderer.render(tokens, mdi.options, {})
    if len(toc) > 1:       # after the first section (the summary)
        nav = ('<nav class="toc"><strong>Contents:</strong> '
               + " · ".join(f'<a href="#{i}">{html.escape(t)}</a>' for i, t in toc[1:]) + "</nav>\n")
        second = body.find(f'<h2 id="{toc[1][0]}"')
        body = body[:second] + nav + body[second:]
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>\n{body}</body></html>\n")
