"""A real browser: JupyterLab on localhost, the quickstart notebook opened in headless Chromium (Debian's
chromium + chromium-driver, driven by Selenium), all its cells run, the workbench widget checked in the
page, and a screenshot of each of its tabs saved to docs/images/ (the README shows them).

Run with `make browser-test` (installs chromium, chromium-driver and selenium when missing). Deselected
from the default `pytest` run by the `browser` marker: it needs those system packages and a few minutes.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lwtgpf.notebooks import NOTEBOOK_DIR, check_parameters, notebook_parameters

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# Headless, offline-friendly Chromium: no background connections to Google's services on a closed network.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,2600", "--hide-scrollbars",
]
# The quickstart with its own epochs and steps, on the small test benchmark (clustering sized for it).
PARAMETERS = {"config_overrides": {"eval.batch_size": 64, "cluster.k1": 10, "cluster.k2": 3, "cluster.min_samples": 3}}
# JupyterLab user settings: no "get notified about Jupyter news?" toast over the screenshots
SETTINGS = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                               "checkForUpdates": False}}
RUN_SECONDS = 900


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _notebook_with_parameters(source: Path, target: Path, values: dict) -> None:
    """Copy `source` with its parameters cell rewritten to `values` (checked like `lwtgpf notebook -p`)."""
    checked = check_parameters(source, values)
    spec = notebook_parameters(source)
    lines = [f"{name} = {checked.get(name, p.default)!r}  # {p.help}" for name, p in spec.items()]
    notebook = json.loads(source.read_text())
    for cell in notebook["cells"]:
        if "parameters" in cell["metadata"].get("tags", []):
            cell["source"] = "\n".join(lines)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(notebook, indent=1))


@pytest.fixture
def lab(tmp_path, synthetic_root):
    """JupyterLab serving a workspace with the quickstart notebook; yields (url, token, run folder)."""
    workspace = tmp_path / "workspace"
    run_dir = tmp_path / "run"
    _notebook_with_parameters(
        NOTEBOOK_DIR / "quickstart.ipynb", workspace / "notebooks" / "quickstart.ipynb",
        {**PARAMETERS, "data_root": str(synthetic_root), "run_dir": str(run_dir)},
    )
    for name, values in SETTINGS.items():
        path = tmp_path / "jupyter" / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ, "OMP_NUM_THREADS": "1",
        # a fresh Jupyter configuration: nothing from the user's home leaks in, nothing is written there
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter" / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter" / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "jupyter" / "workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "jupyter" / "settings"),
    }
    log = (tmp_path / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={workspace}", "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly", "--allow-root",  # offline; CI machines run as root
        ],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}:\n{(tmp_path / 'jupyterlab.log').read_text()}")
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on {url}:\n{(tmp_path / 'jupyterlab.log').read_text()}")
                time.sleep(0.5)
        yield url, token, run_dir
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (`make browser-test` installs them)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("needs selenium: pip install -e '.[browser]' (`make browser-test` installs it)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must never go to the network
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


# JupyterLab's own app object (exposed by --LabApp.expose_app_in_browser): the open notebook and its cells.
NOTEBOOK_JS = "const nb = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
KERNEL_STATUS_JS = NOTEBOOK_JS + """
const kernel = nb && nb.sessionContext && nb.sessionContext.session && nb.sessionContext.session.kernel;
return kernel ? kernel.status : null;
"""
CELLS_JS = NOTEBOOK_JS + """
return nb.content.widgets.filter(c => c.model.type === 'code').map(c => ({
    count: c.model.executionCount,
    errors: c.model.outputs.toJSON().filter(o => o.output_type === 'error')
                                     .map(o => o.ename + ': ' + o.evalue + '\\n' + o.traceback.join('\\n')),
}));
"""


def _wait(condition, seconds: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {seconds:.0f} s waiting for {what}")


def test_quickstart_runs_in_jupyterlab_and_shows_the_workbench(browser, lab):  # no server without a browser
    from selenium.webdriver.common.by import By

    url, token, run_dir = lab
    browser.get(f"{url}/lab/tree/notebooks/quickstart.ipynb?token={token}")
    _wait(lambda: browser.execute_script(KERNEL_STATUS_JS) == "idle", 120, "the notebook's kernel to start")
    browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")

    def finished():
        cells = browser.execute_script(CELLS_JS)
        errors = [e for c in cells for e in c["errors"]]
        if errors:
            pytest.fail("a cell failed in JupyterLab:\n" + re.sub(r"\x1b\[[0-9;]*m", "", errors[0]))
        done = all(c["count"] is not None for c in cells)
        return done and browser.execute_script(KERNEL_STATUS_JS) == "idle"

    _wait(finished, RUN_SECONDS, "all cells to run", interval=2.0)

    # The workbench is in the page: a tab widget whose panels hold rendered figures.
    workbench = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea .widget-tab"), 60,
                      "the workbench widget")[0]
    tabs = workbench.find_elements(By.CSS_SELECTOR, ".lm-TabBar-tab")
    titles = [t.text.strip() for t in tabs]
    assert len(titles) == 5, titles
    epochs = notebook_parameters(NOTEBOOK_DIR / "quickstart.ipynb")["epochs"].default
    assert f"trained ({epochs} epochs): mAP" in browser.find_element(By.CSS_SELECTOR, ".jp-Notebook").text
    IMAGES.mkdir(parents=True, exist_ok=True)
    # the status bar would cover the bottom of figures taller than the window
    browser.execute_script("document.getElementById('jp-main-statusbar').style.display = 'none';")
    for tab, title in zip(tabs, titles):
        browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", workbench)
        tab.click()
        # the visible panel's figure is a decoded <img> of real size (a PNG from the kernel, not a placeholder)
        _wait(lambda: browser.execute_script(
            "const imgs = [...arguments[0].querySelectorAll('img')].filter(i => i.offsetParent !== null);"
            "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 100);", workbench),
            60, f"the figure of the {title!r} tab")
        time.sleep(0.5)  # let the tab's layout settle before the screenshot
        path = IMAGES / f"workbench_{re.sub(r'[^a-z0-9]+', '_', title.lower()).strip('_')}.png"
        workbench.screenshot(str(path))
        assert path.stat().st_size > 10_000, path
    # the same run wrote its static figures headless-style too
    assert len(list((run_dir / "figures").glob("*.png"))) >= 5

    # A round trip through the kernel: type another crop number in the attention tab; the figure changes.
    tabs[titles.index("attention windows")].click()
    visible_src = ("return [...arguments[0].querySelectorAll('img')].filter(i => i.offsetParent !== null)"
                   ".map(i => i.src).join(' ');")
    before = browser.execute_script(visible_src, workbench)
    crop_box = next(box for box in workbench.find_elements(By.CSS_SELECTOR, ".widget-inline-hbox")
                    if box.is_displayed() and box.text.strip().startswith("crop"))
    field = crop_box.find_element(By.CSS_SELECTOR, "input")
    field.clear()
    field.send_keys("2\n")
    _wait(lambda: browser.execute_script(visible_src, workbench) != before, 60, "the attention figure to redraw")
