"""Headless-Chromium check of a report's audio players (``python -m ser_attacks.report.audio_check report.html``):
loads the page, waits for every ``<audio>`` element's metadata and prints its decoded duration; exit code 1 if a
player fails to decode. ``--screenshot shot.png`` renders the audio section. Chromium flags: headless, no sandbox,
no GPU, no network services, a fresh profile per run.
"""
from __future__ import annotations

import html as htmllib
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CHECK_JS = """
<script>
window.addEventListener('load', function () {
  var a = Array.from(document.querySelectorAll('audio')), left = a.length, res = [];
  function done() { var d = document.createElement('pre'); d.id = 'audio-check';
    d.textContent = JSON.stringify(res); document.body.appendChild(d); }
  if (!left) { done(); return; }
  a.forEach(function (el, i) {
    function fin(ok) { res[i] = {ok: ok, duration: el.duration, error: el.error ? el.error.code : null,
                                 title: el.title}; if (--left === 0) done(); }
    if (el.readyState >= 1) { fin(true); return; }
    el.addEventListener('loadedmetadata', function () { fin(true); }, {once: true});
    el.addEventListener('error', function () { fin(false); }, {once: true});
    el.load();
  });
});
</script>
"""


def browser_check(page: Path, chromium: str = "chromium", screenshot: Path | None = None,
                  timeout: int = 120, section: str = "Adversarial audio") -> list[dict]:
    """Load ``page`` in headless Chromium: the decoded duration of every ``<audio>`` player (JS, after load).
    ``screenshot``: a PNG of the page from the heading (h2-h4) starting with ``section`` on (whole page if absent)."""
    exe = shutil.which(chromium) or chromium
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--autoplay-policy=no-user-gesture-required"]
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.html"
        probe.write_text(page.read_text().replace("</body>", CHECK_JS + "</body>"))
        proc = subprocess.run([exe, *flags, f"--user-data-dir={tmp}/profile", "--virtual-time-budget=30000",
                               "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=timeout)
        m = re.search(r'<pre id="audio-check">(.*?)</pre>', proc.stdout, re.S)
        if m is None:
            raise RuntimeError(f"no audio-check result from Chromium (exit {proc.returncode}): {proc.stderr[-500:]}")
        if screenshot is not None:
            text = page.read_text()
            cut = re.search(r"<h[2-4][^>]*>" + re.escape(section), text)
            if cut:
                text = text[:text.index("<body>") + len("<body>")] + text[cut.start():]
            shot = Path(tmp) / "section.html"
            shot.write_text(text)
            subprocess.run([exe, *flags, f"--user-data-dir={tmp}/profile2", "--window-size=1280,2400",
                            "--hide-scrollbars", "--virtual-time-budget=10000", f"--screenshot={screenshot}",
                            shot.as_uri()], capture_output=True, timeout=timeout)
    return json.loads(htmllib.unescape(m.group(1)))


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m ser_attacks.report.audio_check",
                                description="Check the audio players of a report in headless Chromium.")
    p.add_argument("page", type=Path, help="report.html")
    p.add_argument("--chromium", default="chromium")
    p.add_argument("--screenshot", type=Path, default=None)
    p.add_argument("--section", default="Adversarial audio", help="screenshot from this heading on")
    a = p.parse_args(argv)
    res = browser_check(a.page, a.chromium, a.screenshot, section=a.section)
    bad = [r for r in res if not r or not r["ok"] or not r["duration"] or r["duration"] != r["duration"]]
    for r in res:
        print(f"{'ok ' if r and r['ok'] else 'BAD'} {r['duration'] if r else '-'} s  {r['title'] if r else ''}")
    print(f"{len(res)} players, {len(bad)} failed")
    return 1 if bad or not res else 0


if __name__ == "__main__":
    raise SystemExit(main())
