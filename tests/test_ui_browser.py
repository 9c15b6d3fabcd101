"""The MLflow UI in a real browser: a sweep opens on its runs, groups by an axis, and shows a compression chart.

A real ``mlflow server`` on 127.0.0.1 serves a small SQLite store holding a
synthetic sweep (real MLflow runs with the tags, params and metric keys of a
real one, plus the ``summary/compression/...`` metrics a real trial logs);
headless Debian chromium is driven by selenium through ``/usr/bin/chromedriver``
(no selenium-manager, no network). Skipped where chromium, chromedriver or
selenium are not installed (``apt-get install -y chromium chromium-driver``;
``pip install selenium``). Screenshots go to ``$IB_SWEEPS_UI_SHOTS`` (default:
the test's temporary folder); the path is printed.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from ib_sweeps.analysis import synthetic as syn
from ib_sweeps.sweep.progress import where_to_look

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs chromium and chromedriver (Debian packages)"),
]
webdriver = pytest.importorskip("selenium.webdriver")

EPOCHS = np.r_[0, np.unique(np.geomspace(1, 2000, 30).astype(int))]
ACTS = ("tanh", "relu", "sigmoid")
LAYERS = ("layer_1", "layer_2", "layer_3")  # layer_2: the last hidden layer


def _store(uri: str) -> tuple[str, str, float]:
    """A 3-activation x 2-seed synthetic sweep 'acts' with per-trial compression summaries.

    Returns (experiment id, parent run id, mean compression of the tanh trials in bits).
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    trials = []
    for act in ACTS:
        c = {"tanh": 2.0, "relu": 0.0, "sigmoid": 1.0}[act]
        for seed in range(2):
            ixt = {("binning", lay): syn.rise_fall(EPOCHS, 300, 8 - i, 8 - i - c) for i, lay in enumerate(LAYERS)}
            iyt = {("binning", lay): syn.rise_fall(EPOCHS, 300, 0.9, 0.95) for lay in LAYERS}
            trials.append(syn.Trial({"model.activation": act, "seed": seed}, EPOCHS, ixt, iyt))
    parent = syn.write_sweep(uri, "acts", trials, {"grid": {"model.activation": list(ACTS)}})
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("acts")
    now, tanh = int(time.time() * 1000), []
    for run in client.search_runs([exp.experiment_id], "tags.`ib_sweeps.role` = 'trial'"):
        ixt = [m.value for m in client.get_metric_history(run.info.run_id, "ixt/binning/layer_2")]
        summary = Metric("summary/compression/binning/last_hidden", max(ixt) - ixt[-1], now, 0)
        client.log_batch(run.info.run_id, metrics=[summary])  # as sweep.runner logs a real trial's summary
        if run.data.params["model.activation"] == "tanh":
            tanh.append(summary.value)
    return exp.experiment_id, parent, float(np.mean(tanh))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc, log: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"mlflow server did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def server(tmp_path):
    """``(base URL, experiment id, parent run id, tracking URI, tanh compression)``: a real server on 127.0.0.1."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exp_id, parent, tanh = _store(uri)
    tags = MlflowClient(uri).get_experiment(exp_id).tags
    assert tags.get("mlflow.experimentKind") == "custom_model_development"  # ib-sweeps tags its experiments
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--default-artifact-root",
           str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(base, proc, log)
        yield base, exp_id, parent, uri, tanh
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and the uvicorn worker it started
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture
def browser(monkeypatch):
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium-manager must not try to download anything
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="ib-sweeps-chromium-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                "--window-size=1500,1000"):  # fmt: skip
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _body(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def _until(driver, what, timeout: float = 60.0, message: str = ""):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.5).until(lambda d: what(d), message)


def test_sweep_opens_on_its_runs_groups_by_an_axis_and_shows_compression(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, exp_id, parent, uri, tanh = server
    shots = Path(os.environ.get("IB_SWEEPS_UI_SHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {shots}")
    lines = where_to_look("acts", parent, exp_id, uri).replace("http://127.0.0.1:5000", base)
    runs_url = next(w for w in lines.split() if w.startswith(base) and "/runs/" not in w)
    parent_url = next(w for w in lines.split() if w.startswith(base) and f"/runs/{parent}" in w)

    # 1. the link ib-sweeps prints opens the experiment on its runs, not on the GenAI overview or traces
    browser.get(runs_url)
    _until(browser, lambda d: "acts-synthetic" in _body(d), message="the sweep's parent run is not listed")
    assert f"/experiments/{exp_id}/runs" in browser.current_url and "genai" not in browser.current_url
    assert "matching runs" in _body(browser) and "Group by" in _body(browser)
    browser.save_screenshot(str(shots / "1_runs.png"))

    # 2. group the runs by an axis (the param model.activation)
    button = next(b for b in browser.find_elements(By.TAG_NAME, "button") if "Group by" in b.text)
    button.click()
    item = _until(browser, lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, "[role=menuitemcheckbox]")
                                           if e.text.strip() == "model.activation"), None),
                  message="model.activation is not offered in Group by")  # fmt: skip
    item.click()
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    _until(browser, lambda d: all(f"Group: {a}" in _body(d) for a in ACTS), message="runs not grouped")
    assert "Group by: model.activation" in _body(browser)
    browser.save_screenshot(str(shots / "2_grouped_by_activation.png"))

    # 3. the chart view holds the compression of the last hidden layer, per group
    chart_mode = browser.find_element(By.CSS_SELECTOR, "input[name=runs-view-mode][value=CHART]")
    browser.execute_script("arguments[0].click()", chart_mode)
    search = _until(browser, lambda d: next(iter(d.find_elements(By.CSS_SELECTOR,
                                                                 "input[placeholder='Search metric charts']")), None),
                    message="no chart view")  # fmt: skip
    _until(browser, lambda d: "tanh (ixt/binning/layer_2)" in _body(d), message="no I(X;T) chart drawn")
    _until(
        browser,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer path.js-line")) >= 3,
        message="not drawn",
    )
    browser.save_screenshot(str(shots / "3_charts_ixt.png"))
    search.send_keys("compression")
    # drawn: a bar per group, tanh's at its mean compression (about 2 bits); no I(X;T) chart left
    _until(
        browser, lambda d: f"{tanh:.2f}" in _body(d) and "ixt/binning" not in _body(d), message="no compression chart"
    )
    assert "summary/compression/binning" in _body(browser)
    browser.save_screenshot(str(shots / "4_compression_chart.png"))

    # 4. the parent-run link opens the invocation's parent run
    browser.get(parent_url)
    _until(browser, lambda d: "acts-synthetic" in _body(d) and parent in _body(d), message="parent run page")
    browser.save_screenshot(str(shots / "5_parent_run.png"))
