"""Check a rendered report in headless Chromium: its layout at a window width (does the page scroll sideways? is the
verdict column on screen?) and a screenshot. Used by the report's tests and benchmarks/report_screenshots.py."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

# Runs in the report after load and reports what it measured to the wrapper page (which --dump-dom prints).
PROBE = """<script>window.addEventListener('load', function () {
  var de = document.documentElement, v = document.querySelector('td.verdict'), r = v && v.getBoundingClientRect();
  var wide = [];
  document.querySelectorAll('body *').forEach(function (el) {
    var b = el.getBoundingClientRect();
    if (b.right > window.innerWidth + 1 && wide.length < 5) wide.push(el.tagName + '.' + el.className);
  });
  var data = JSON.stringify({scrollWidth: de.scrollWidth, innerWidth: window.innerWidth, wide: wide,
    verdict: r ? {left: r.left, right: r.right, width: r.width, text: v.textContent} : null});
  if (parent !== window) { parent.postMessage(data, '*'); return; }
  var pre = document.createElement('pre'); pre.id = 'layout-probe'; pre.textContent = data;
  document.body.appendChild(pre);
});</script>"""
# Headless Chromium has no window narrower than 500 px: a narrower report is shown in an iframe of that width.
MIN_WINDOW = 500
WRAPPER = """<!doctype html><html><body style='margin:0;background:#888'>
<iframe src='report.html' style='width:{width}px;height:{height}px;border:0;display:block;background:#fff'></iframe>
<script>window.addEventListener('message', function (e) {{
  var pre = document.createElement('pre'); pre.id = 'layout-probe'; pre.textContent = e.data;
  document.body.appendChild(pre); }});</script></body></html>"""


def _pages(html_path: str | Path, tmp: Path, width: int, height: int) -> Path:
    """The report (with the probe) in `tmp`, shown in a wrapper page `width` px wide when the window cannot be that
    narrow; the page to open."""
    text = Path(html_path).read_text(encoding="utf-8")
    (tmp / "report.html").write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    if width >= MIN_WINDOW:
        return tmp / "report.html"
    wrapper = tmp / "frame.html"
    wrapper.write_text(WRAPPER.format(width=width, height=height), encoding="utf-8")
    return wrapper


def chromium() -> str | None:
    """The Chromium binary, if one is installed (Debian: apt-get install -y chromium)."""
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _flags(binary: str, profile: Path, width: int, height: int) -> list[str]:
    return [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile}", f"--window-size={width},{height}"]


def layout(html_path: str | Path, width: int, height: int = 900, timeout: float = 120) -> dict:
    """{scrollWidth, innerWidth, wide: [elements past the right edge], verdict: first verdict cell's box} of the
    page at this width."""
    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        page = _pages(html_path, Path(tmp), width, height)
        cmd = _flags(binary, Path(tmp) / "profile", max(width, MIN_WINDOW), height) + [
            "--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
        dom = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout
    m = re.search(r'<pre id="layout-probe">(.*?)</pre>', dom, re.S)
    if m is None:
        raise RuntimeError("the layout probe did not run (no #layout-probe in the dumped DOM)")
    return json.loads(html.unescape(m.group(1)))


def screenshot(html_path: str | Path, png: str | Path, width: int, height: int = 1600, timeout: float = 120) -> Path:
    """A PNG of the page's first `height` pixels at this width (on a grey margin when narrower than 500 px)."""
    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium is not installed")
    png = Path(png).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        page = _pages(html_path, Path(tmp), width, height)
        cmd = _flags(binary, Path(tmp) / "profile", max(width, MIN_WINDOW), height) + [
            "--virtual-time-budget=10000", f"--screenshot={png}", page.as_uri()]
        subprocess.run(cmd, capture_output=True, timeout=timeout)
    return png
