"""Headless Chromium driven over the DevTools protocol through a pipe (standard library only).

Used to check what a researcher sees: that ``report.html`` renders (no broken image, no raw Markdown) and
to take the README's screenshots of the report and of the MLflow runs table
(``python -m ser_attacks.browser``, ``make screenshots``, ``tests/test_ui.py``). Chromium is the Debian
package (``apt-get install chromium``) or whatever ``SER_ATTACKS_CHROMIUM`` names.

``--remote-debugging-pipe`` makes Chromium read DevTools commands from file descriptor 3 and write replies to
4 (NUL-separated JSON), so no port, websocket library or driver is needed.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from .paths import default_uri, resolve_uri
from .progress import quiet_libraries

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--mute-audio", "--disable-extensions", "--remote-debugging-pipe")


class BrowserError(RuntimeError):
    """Chromium is missing, died, or a page did not get ready in time."""


def _high_fd(fd: int) -> int:
    import fcntl
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


def find_chromium() -> str | None:
    """The Chromium executable: ``SER_ATTACKS_CHROMIUM``, else the first of NAMES on PATH."""
    if os.environ.get("SER_ATTACKS_CHROMIUM"):
        return os.environ["SER_ATTACKS_CHROMIUM"]
    return next((p for p in map(shutil.which, NAMES) if p), None)


class Browser:
    """One headless Chromium with one page: ``goto``, ``evaluate``, ``wait_for``, ``screenshot``."""

    def __init__(self, width: int = 1600, height: int = 1000, binary: str | None = None, timeout: float = 60):
        self.binary = binary or find_chromium()
        if not self.binary:
            raise BrowserError("Chromium not found: install it (Debian: apt-get install chromium) or set "
                               "SER_ATTACKS_CHROMIUM")
        self.width, self.height, self.timeout = width, height, timeout
        self._id = 0
        self._replies: dict[int, dict] = {}
        self._cond = threading.Condition()
        self._closed = False

    # ----------------------------------------------------------------------------- process
    def __enter__(self) -> "Browser":
        self._profile = tempfile.mkdtemp(prefix="ser-attacks-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # the child's ends above 9, so moving them to 3 and 4 never overwrites one with the other
        to_chrome_r, from_chrome_w = (_high_fd(fd) for fd in (to_chrome_r, from_chrome_w))
        # a small exec wrapper puts our pipe ends on fds 3 and 4, where --remote-debugging-pipe expects them
        wrapper = ("import os, sys; r, w = int(sys.argv[1]), int(sys.argv[2]); os.dup2(r, 3); os.dup2(w, 4); "
                   "os.close(r); os.close(w); os.execv(sys.argv[3], sys.argv[3:])")
        cmd = [sys.executable, "-c", wrapper, str(to_chrome_r), str(from_chrome_w), self.binary, *FLAGS,
               f"--user-data-dir={self._profile}", f"--window-size={self.width},{self.height}", "about:blank"]
        self.proc = subprocess.Popen(cmd, pass_fds=(to_chrome_r, from_chrome_w), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr), daemon=True).start()
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.resize(self.width, self.height)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.send("Browser.close", session=False, timeout=10)
        except Exception:  # noqa: BLE001 - already gone
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_chrome, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._replies[msg["id"]] = msg
                        self._cond.notify_all()
        with self._cond:
            self._closed_pipe = True
            self._cond.notify_all()

    # ----------------------------------------------------------------------------- protocol
    def send(self, method: str, params: dict | None = None, session: bool = True, timeout: float | None = None):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        try:
            os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        except BrokenPipeError:
            time.sleep(0.5)
            raise BrowserError(f"Chromium ({self.binary}) exited (code {self.proc.poll()}): "
                               f"{b''.join(self._stderr).decode(errors='replace')[-2000:]}") from None
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while self._id not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or getattr(self, "_closed_pipe", False):
                    err = b"".join(self._stderr).decode(errors="replace")[-2000:]
                    raise BrowserError(f"no reply to {method} from Chromium ({self.binary}); its stderr: {err}")
                self._cond.wait(left)
            reply = self._replies.pop(self._id)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def resize(self, width: int, height: int) -> None:
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def evaluate(self, expression: str):
        """The value of a JavaScript expression (promises awaited)."""
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise BrowserError(f"JavaScript error: {r['exceptionDetails'].get('text')} "
                               f"{r['exceptionDetails'].get('exception', {}).get('description', '')}")
        return r.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float | None = None, what: str | None = None):
        """Poll a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {what or expression}")
            time.sleep(0.25)

    def goto(self, url: str, ready: str = "document.readyState === 'complete'", timeout: float | None = None) -> None:
        self.send("Page.navigate", {"url": url})
        time.sleep(0.2)
        self.wait_for(ready, timeout, what=f"{url} to load")

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        """A PNG of the viewport, or of the whole page height (``full_page``)."""
        height = self.height
        if full_page:
            height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)") or self.height)
            self.resize(self.width, height)
        try:
            data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": full_page})["data"]
        finally:
            if full_page:
                self.resize(self.width, self.height)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


# ------------------------------------------------------------------------------- the report
PAGE_STATE = """(() => ({
  images: [...document.images].map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0,
                                            width: i.naturalWidth})),
  text: document.body.innerText,
  headings: [...document.querySelectorAll('h1,h2')].map(h => h.innerText),
}))()"""
# what Markdown looks like when it was not rendered: emphasis markers, image/link syntax, headings,
# pipe-table rows and rules, code fences and backticks
RAW_MARKDOWN = (re.compile(r"\*\*|!\[|\]\(|`"), re.compile(r"^\s{0,3}#{1,6}\s"), re.compile(r"^\s*\|.*\|\s*$"),
                re.compile(r"^\s*\|?\s*:?-{3,}"), re.compile(r"(^|[\s(])_[^_\s][^_]*_($|[\s).,;:])"))


def raw_markdown(text: str) -> list[str]:
    """Lines of rendered text that still look like Markdown source."""
    return [line for line in text.splitlines() if any(p.search(line) for p in RAW_MARKDOWN)]


def check_report(html: Path, screenshot: Path | None = None, width: int = 1400, height: int = 1000) -> dict:
    """Open ``report.html`` in headless Chromium: its images (all must load), the Markdown left raw in the
    visible text (must be none), its headings; and a screenshot of the top of the page if asked."""
    with Browser(width, height) as b:
        b.goto(Path(html).resolve().as_uri())
        b.wait_for("[...document.images].every(i => i.complete)", what="the report's images")
        state = b.evaluate(PAGE_STATE)
        if screenshot:
            b.screenshot(screenshot)
    return {"images": state["images"], "broken": [i["alt"] for i in state["images"] if not i["ok"]],
            "raw_markdown": raw_markdown(state["text"]), "headings": state["headings"]}


FIRST_SCREEN = """(() => {
  const t = document.getElementById('takeaway'), r = t && t.getBoundingClientRect();
  const num = document.querySelector('td.num'), first = document.querySelector('.table-wrap td');
  const toc = document.querySelector('nav.toc');
  return {takeaway_top: r ? r.top + scrollY : null, takeaway_bottom: r ? r.bottom + scrollY : null,
          takeaway: t ? t.innerText : null, toc_top: toc ? toc.getBoundingClientRect().top + scrollY : null,
          number_align: num ? getComputedStyle(num).textAlign : null,
          first_column: first ? getComputedStyle(first).position : null,
          height: document.documentElement.scrollHeight};
})()"""
# scroll to a section (by its heading's id), opening its first folded subsection when asked
SHOW_SECTION = """((id, open) => {
  const h = document.getElementById(id);
  if (!h) return false;
  if (open) { let e = h.nextElementSibling;
    while (e && e.tagName !== 'DETAILS' && e.tagName !== 'H2') e = e.nextElementSibling;
    if (e && e.tagName === 'DETAILS') e.open = true; }
  window.scrollTo(0, h.getBoundingClientRect().top + scrollY - 10);
  return true;
})"""


TAKEAWAY_WITHIN = 1200       # px: the takeaway must end within the first screen and a bit
REPORT_SECTIONS = {"forest": ("protocol-gap", False), "checklist": ("robustness-checklist", True)}


def report_screenshots(html: Path, out: Path, prefix: str = "report", sections: dict | None = None,
                       width: int = 1400, height: int = 1000) -> dict:
    """The first screen of ``report.html`` (``<prefix>_first_screen.png``) with where its takeaway ends, and one
    screenshot per section in ``sections`` ({name: (heading id, open its first fold)}) as ``<prefix>_<name>.png``.
    Returns the first screen's measures (``takeaway_bottom`` in px from the top, …) and the files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with Browser(width, height) as b:
        b.goto(Path(html).resolve().as_uri())
        b.wait_for("[...document.images].every(i => i.complete)", what="the report's images")
        seen = b.evaluate(FIRST_SCREEN)
        files = [b.screenshot(out / f"{prefix}_first_screen.png")]
        for name, (anchor, unfold) in (sections or {}).items():
            if not b.evaluate(f"{SHOW_SECTION}({json.dumps(anchor)}, {json.dumps(bool(unfold))})"):
                raise BrowserError(f"no section #{anchor} in {html}")
            time.sleep(0.3)
            files.append(b.screenshot(out / f"{prefix}_{name}.png"))
    return {**seen, "files": files}


# ------------------------------------------------------------------------------- the MLflow UI
SUMMARY_VIEW = "summary"       # tracking.views.SUMMARY_VIEW (not imported: this module stays light)


def ui_url(base_url: str, experiment_id: str, view: str | None = SUMMARY_VIEW) -> str:
    """The experiment's runs table. MLflow 3.17's UI opens on its GenAI view (traces, token usage) unless its
    sidebar switch says "Model training" (stored in the browser) or the link carries ``workflowType``; ``view``:
    the saved view it opens with (``tracking.views``: the summary columns; None: MLflow's default columns)."""
    url = f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    return url + (f"&viewStateShareKey={view}" if view else "")


def mlflow_runs_table(base_url: str, experiment_id: str, path: Path, expand=(), metrics=(
        "clean_acc", "adv_acc", "adv_acc_female", "adv_acc_male", "perturbation", "attack_time_s"),
        width: int = 1600, height: int = 720, timeout: float = 120) -> dict:
    """Screenshot of an experiment's runs table in the MLflow UI: the runs in ``expand`` (sweep parents)
    expanded to show their children, ``metrics`` as columns, the assistant panel closed. The view is set
    the way the UI keeps it itself (its localStorage state), then the page is loaded. Returns the visible
    column headers and row texts."""
    state = {"searchFilter": "", "orderByKey": "attributes.start_time", "orderByAsc": False, "startTime": "ALL",
             "lifecycleFilter": "Active", "datasetsFilter": [], "modelVersionFilter": "All Runs",
             "selectedColumns": ["attributes.`Models`", *[f"metrics.`{m}`" for m in metrics]],
             "runsExpanded": {r: True for r in expand}, "runsHiddenMode": "SHOW_ALL", "viewMaximized": False,
             "columnWidths": {"attributes.`Run Name`": 300}}
    storage = {f'MLflowLocalStorage-1.1-ExperimentPage-["{experiment_id}"]-ReactComponentState': json.dumps(state),
               "mlflow.workflowType_v1": json.dumps("machine_learning"),
               "mlflow.assistant.panelOpen_v1": "false", "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true"}
    with Browser(width, height, timeout=timeout) as b:
        b.goto(base_url.rstrip("/") + "/health", ready="document.readyState === 'complete'")
        b.evaluate(f"(() => {{ const s = {json.dumps(storage)}; "
                   "for (const k in s) localStorage.setItem(k, s[k]); })()")
        b.goto(ui_url(base_url, experiment_id, view=None))      # the state set above, not the saved view
        b.wait_for(f"document.querySelectorAll('.ag-center-cols-container [role=row]').length >= {1 + len(expand)}",
                   what="the MLflow runs table")
        time.sleep(2.0)            # metric cells and model links fill in after the rows
        seen = b.evaluate(READ_TABLE)
        b.screenshot(path)
    return seen


def mlflow_fresh_view(base_url: str, experiment_id: str, run_id: str, out: Path, width: int = 1600,
                      height: int = 900, timeout: float = 120) -> dict:
    """What a first-time visitor sees (a new browser profile, no saved UI state): the runs table at the link
    ``make ui`` prints, which opens the experiment's saved view (``tracking.views``: summary metric columns;
    ``fresh_runs.png``), then run ``run_id``'s page (``fresh_run.png``); and, in another new profile, the runs
    table at the plain link (MLflow's default columns: ``plain``, its headers, rows and the page's text). Returns
    the first table's headers and rows and the run page's text."""
    rows_ready = "document.querySelectorAll('.ag-center-cols-container [role=row]').length >= 1"
    with Browser(width, height, timeout=timeout) as b:
        b.goto(ui_url(base_url, experiment_id))
        b.wait_for(f"{rows_ready} && document.body.innerText.includes('clean_acc')", what="the saved view")
        time.sleep(2.0)            # metric cells and model links fill in after the rows
        seen = b.evaluate(READ_TABLE)
        b.screenshot(Path(out) / "fresh_runs.png")
        b.goto(f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}")
        b.wait_for(f"document.body.innerText.includes({json.dumps(run_id)}) || "
                   "document.body.innerText.includes('Parameters')", what="the run page")
        time.sleep(2.0)
        seen["run_page"] = b.evaluate("document.body.innerText")
        b.screenshot(Path(out) / "fresh_run.png")
    with Browser(width, height, timeout=timeout) as b:        # a grid, once built, keeps its column order
        b.goto(ui_url(base_url, experiment_id, view=None))
        b.wait_for(rows_ready, what="the MLflow runs table")
        time.sleep(2.0)
        seen["plain"] = {**b.evaluate(READ_TABLE), "text": b.evaluate("document.body.innerText")}
    return seen


def mlflow_model_version(base_url: str, name: str, version: str, path: Path, width: int = 1600, height: int = 1000,
                         timeout: float = 120) -> str:
    """Screenshot of a registered model version's page in a new browser profile, its signature's inputs unfolded
    (the description, the tags val_acc / test_acc / defense, the input tensor). Returns the page's text."""
    with Browser(width, height, timeout=timeout) as b:
        b.goto(f"{base_url.rstrip('/')}/#/models/{name}/versions/{version}")
        b.wait_for("document.body.innerText.includes('Inputs (')", what="the model version's schema")
        b.evaluate("""(() => { const hit = x => (x.textContent || '').trim().startsWith('Inputs (');
                      const e = [...document.querySelectorAll('[role=cell] *')].filter(
                          x => hit(x) && ![...x.children].some(hit))[0];
                      if (e) e.click(); })()""")                    # unfold the signature's inputs
        time.sleep(1.5)
        b.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        for el in ("main", "[class*=content]"):         # the page scrolls inside its main panel
            b.evaluate(f"document.querySelectorAll({json.dumps(el)}).forEach(e => e.scrollTop = e.scrollHeight)")
        time.sleep(1.0)
        text = b.evaluate("document.body.innerText")
        b.screenshot(path)
    return text


READ_TABLE = """(() => {
  const text = (sel) => [...document.querySelectorAll(sel)].map(e => e.innerText.replace(/\\s+/g, ' ').trim());
  return {headers: text('.ag-header-row-column [role=columnheader]').filter(Boolean),
          rows: text('.ag-pinned-left-cols-container [role=row], .ag-center-cols-container [role=row]')};
})()"""


# ------------------------------------------------------------------------------- screenshots (CLI)
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowUI:
    """``mlflow ui`` on a free loopback port for one tracking URI, stopped on exit (its own process group)."""

    def __init__(self, uri: str, timeout: float = 180):
        self.uri, self.timeout = uri, timeout

    def __enter__(self) -> str:
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        exe = Path(sys.executable).with_name("mlflow")
        self.proc = subprocess.Popen([str(exe) if exe.exists() else "mlflow", "ui", "--backend-store-uri", self.uri,
                                      "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as r:
                    if r.status == 200:
                        return url
            except OSError:
                time.sleep(1)
        self.__exit__()
        self.log.seek(0)
        raise BrowserError(f"mlflow ui did not start on port {self.port}: "
                           f"{self.log.read().decode(errors='replace')[-2000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def screenshots(uri: str, out: Path, experiment: str = "ser-attacks", sweep: str | None = None,
                ui_url: str | None = None) -> dict:
    """The README's screenshots for one sweep: ``mlflow_runs.png`` (the runs table, the sweep expanded,
    metric columns), ``mlflow_fresh_runs.png`` / ``mlflow_fresh_run.png`` (the runs table and the sweep's page in
    a browser without saved UI state, ``mlflow_fresh_view``), ``mlflow_model_version.png`` (the registered version
    of the model the sweep trained, ``mlflow_model_version``) and ``report.png`` (the top of the sweep's
    report.html, its parent run's artifact), with the report's browser checks. Starts ``mlflow ui`` unless
    ``ui_url`` points at a running one."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise BrowserError(f"no experiment {experiment!r} at {uri}")
    if sweep is None:
        runs = client.search_runs([exp.experiment_id], "tags.run_type = 'sweep'", max_results=1,
                                  order_by=["attributes.start_time DESC"])
        if not runs:
            raise BrowserError(f"no sweep run in experiment {experiment!r} at {uri}")
        sweep = runs[0].info.run_id
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"sweep": sweep}
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(client.download_artifacts(sweep, "report.html", tmp))
        result["report"] = check_report(html, out / "report.png")
    with contextlib.ExitStack() as stack:
        url = ui_url or stack.enter_context(MlflowUI(uri))
        result["runs_table"] = mlflow_runs_table(url, exp.experiment_id, out / "mlflow_runs.png", expand=[sweep])
        # what a first-time visitor sees: a new browser profile, no saved UI state; then the sweep's own page
        result["fresh"] = mlflow_fresh_view(url, exp.experiment_id, sweep, out)
        train = _train_run(client, exp.experiment_id, sweep)
        mv = client.search_model_versions(f"run_id = '{train}'") if train else []
        if mv:          # the registered model's version: its signature, accuracies and defense
            result["model_version"] = mlflow_model_version(url, mv[0].name, mv[0].version,
                                                           out / "mlflow_model_version.png")
        for name in ("fresh_runs.png", "fresh_run.png"):
            (out / name).replace(out / f"mlflow_{name}")
    return result


def _train_run(client, experiment_id: str, sweep: str) -> str | None:
    """The training run nested under sweep ``sweep`` (None when it reused a model trained elsewhere)."""
    runs = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{sweep}' and tags.run_type = 'train'",
                              max_results=1)
    return runs[0].info.run_id if runs else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ser_attacks.browser",
                                description="Screenshots of a sweep's MLflow runs table and report (headless "
                                            "Chromium), and the report's browser checks.")
    p.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
    p.add_argument("--experiment", default="ser-attacks")
    p.add_argument("--sweep", default=None, help="parent run id (default: the newest sweep)")
    p.add_argument("--ui-url", default=None, help="a running MLflow UI (default: start one on a free port)")
    p.add_argument("--out", default="docs/img", help="folder for mlflow_runs.png and report.png")
    p.add_argument("--report", default=None, metavar="REPORT_HTML",
                   help="instead: screenshots of this report.html (first screen, forest plots, checklist) as "
                        "<prefix>_*.png in --out")
    p.add_argument("--prefix", default="report_study", help="file name prefix for --report")
    a = p.parse_args(argv)
    quiet_libraries()
    if a.report:
        try:
            r = report_screenshots(Path(a.report), Path(a.out), a.prefix, REPORT_SECTIONS)
        except BrowserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{', '.join(str(f) for f in r['files'])}; takeaway ends at {r['takeaway_bottom']:.0f} px, page "
              f"{r['height']} px")
        return 0 if r["takeaway_bottom"] is not None and r["takeaway_bottom"] <= TAKEAWAY_WITHIN else 1
    uri = resolve_uri(a.tracking_uri) if a.tracking_uri else default_uri()
    try:
        r = screenshots(uri, Path(a.out), a.experiment, a.sweep, a.ui_url)
    except BrowserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rep = r["report"]
    print(f"sweep {r['sweep']}: {a.out}/mlflow_runs.png ({len(r['runs_table']['rows'])} table rows), "
          f"{a.out}/report.png ({len(rep['images'])} images, {len(rep['broken'])} broken, "
          f"{len(rep['raw_markdown'])} lines of raw Markdown)")
    for line in rep["raw_markdown"][:10]:
        print("  raw Markdown:", line)
    return 1 if rep["broken"] or rep["raw_markdown"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
