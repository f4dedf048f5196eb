"""report.html in a real browser: Chromium (headless, from Debian's package) opens it from disk, offline,
and a script added to a copy of the page records what loaded: the tables and every image."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from types import SimpleNamespace

import pytest

from seqlab.reports.comparison import comparison_sections
from seqlab.reports.document import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Runs after every image has loaded or failed (the load event), then writes its findings into the DOM.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(img => ({src: img.src.slice(0, 30), complete: img.complete,
    width: img.naturalWidth, height: img.naturalHeight}));
  const svgs = [...document.querySelectorAll("svg")].map(svg => svg.getBBox().width);
  const tables = [...document.querySelectorAll("table")].map(t => ({rows: t.rows.length,
    caption: t.caption ? t.caption.textContent : ""}));
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({images, svgs, tables, width: document.documentElement.scrollWidth});
  document.body.appendChild(out);
});
</script>"""


def _report(folder):
    cells, metrics = [], []
    for d, data in enumerate(["alpha", "beta", "gamma"]):
        for j, model in enumerate(["rnn", "lstm", "gru"]):
            for seed in (0, 1):
                value = 0.5 + 0.1 * j + 0.02 * d + 0.01 * seed
                cells.append(SimpleNamespace(model=model, data=data, seed=seed,
                                             job=SimpleNamespace(folder=folder / data / model / str(seed))))
                metrics.append({"task": "classification", "params": 100, "train_seconds": 1.0, "epochs": 2,
                                "test": {"accuracy": value, "macro_f1": value - 0.05},
                                "baselines": {"majority": {"accuracy": 0.3, "macro_f1": 0.1}}})
    return write_report(folder, "browser check", comparison_sections(cells, metrics), "three data sets")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium; "
                    ".ci/run installs it)")
def test_report_html_loads_its_tables_and_images_in_chromium(tmp_path):
    _, page = _report(tmp_path)
    html = page.read_text()
    assert not re.search(r'(src|href)="(?!data:)', html), "the report must not reference other files"
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "\n</body>"))
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         "--window-size=1366,768", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000",
         "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert found, f"chromium printed no probe (exit {result.returncode}): {result.stderr[-500:]}"
    state = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    # 3 data sets x (bars, curves) + the critical-difference diagram
    assert len(state["images"]) == 7
    for image in state["images"]:
        assert image["complete"] and image["width"] > 100 and image["height"] > 50, image
        assert image["src"].startswith("data:image/png;base64,")
    assert all(width > 0 for width in state["svgs"])
    captions = [t["caption"] for t in state["tables"]]
    assert [c for c in captions if "over seeds 0, 1" in c] == [f"{d}: mean ± sd over seeds 0, 1"
                                                                   for d in ("alpha", "beta", "gamma")]
    assert all(t["rows"] >= 4 for t in state["tables"][:3])  # header, 3 models, the baseline
    assert state["width"] <= 1366  # readable on a laptop screen: no sideways scrolling
