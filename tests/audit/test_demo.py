"""`audit demo`: every bad input gets a 4xx and the server keeps serving (Flask's test client and
a real server), and an end-to-end run in headless Chromium: upload an image, wait for the result,
check the predicted class and the boxed image, save a screenshot under reports/examples/."""

import io
import json
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from audit.demo.app import create_app
from audit.explain import explain, load, open_image
from transfg.config import tiny
from transfg.data.bundled import ROOT as DIGITS
from transfg.data.readers import read_split
from transfg.spec import RunSpec, Seeds, TrainConfig

EXAMPLES = Path(__file__).parents[2] / "reports" / "examples"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from transfg.train import main as train_main

    run = tmp_path_factory.mktemp("demo") / "run"  # not numbered: the screenshot shows its name
    run.mkdir()
    spec = RunSpec("torch", tiny(), TrainConfig(steps=4, warmup_steps=1, eval_every=4,
                                                checkpoint_every=4, workers=0, batch_size=8,
                                                eval_batch_size=32),
                   "digits", str(DIGITS), Seeds.from_seed(5), subset={"train": 64, "test": 16})
    (run / "spec.json").write_text(json.dumps(spec.to_dict()))
    assert train_main([str(run)]) == 0
    return run / "checkpoints" / "last.npz"


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_bad_inputs_get_4xx_and_the_app_keeps_serving(checkpoint, tmp_path):
    bundle = load(checkpoint)
    samples = read_split("digits", DIGITS, "test")
    client = create_app(bundle, samples, max_bytes=200_000).test_client()
    before = sorted(tmp_path.rglob("*"))
    cases = [
        ({"image": (io.BytesIO(b"GIF89a but not really"), "x.gif")}, 400, "not an image"),
        ({"image": (io.BytesIO(png(Image.new("1", (8000, 8000)))), "bomb.png")}, 400,
         "pixel limit"),
        ({"image": (io.BytesIO(b"\0" * 400_000), "big.png")}, 413, "byte limit"),
        ({}, 400, "no file"),
    ]
    for data, status, message in cases:
        response = client.post("/api/explain", data=data, content_type="multipart/form-data")
        assert response.status_code == status, response.json
        assert message in response.json["error"]
    assert client.get("/api/sample/999").status_code == 404
    good = client.post("/api/explain", data={"image": (io.BytesIO(samples[0].path.read_bytes()),
                                                       "ok.png")},
                       content_type="multipart/form-data")
    assert good.status_code == 200  # still serving after every bad input
    expected = explain(bundle, open_image(samples[0].path))
    assert good.json["predicted"] == expected.top5[0]["name"]
    assert good.json["boxed"].startswith("data:image/png;base64,")
    sample = client.get("/api/sample/0").json
    assert sample["label"] == bundle.class_names[samples[0].label]
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def test_the_server_binds_to_localhost_by_default_and_survives_bad_requests(checkpoint):
    process = subprocess.Popen([sys.executable, "-m", "audit.cli", "demo", "--checkpoint",
                                str(checkpoint), "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("demo: http://127.0.0.1:") and "only this machine" in line
        url = line.split()[1]
        request = urllib.request.Request(url + "api/explain", data=b"garbage", method="POST",
                                         headers={"Content-Type": "multipart/form-data; "
                                                                  "boundary=x"})
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=30)
        assert error.value.code == 400
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200 and b"Part Selection Module" in page.read()
    finally:
        process.send_signal(signal.SIGINT)  # a clean exit (see the browser test's note)
        process.wait(timeout=30)


BROWSER = r"""
import json, subprocess, sys, time
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
checkpoint, image, screenshot, chromium, driver_path = sys.argv[1:6]
server = subprocess.Popen([sys.executable, "-m", "audit.cli", "demo", "--checkpoint", checkpoint,
                           "--port", "0"], stdout=subprocess.PIPE, text=True)
url = server.stdout.readline().split()[1]
options = webdriver.ChromeOptions()
options.binary_location = chromium
for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,1000",
             "--disable-dev-shm-usage"):
    options.add_argument(flag)
browser = webdriver.Chrome(options=options, service=Service(driver_path))
try:
    browser.get(url)
    browser.find_element(By.ID, "file").send_keys(image)
    WebDriverWait(browser, 120).until(
        lambda b: b.find_element(By.ID, "predicted").text or b.find_element(By.ID, "error").text)
    result = {"predicted": browser.find_element(By.ID, "predicted").text,
              "error": browser.find_element(By.ID, "error").text,
              "boxed": browser.find_element(By.ID, "boxed").get_attribute("src")[:30],
              "boxed_width": browser.execute_script(
                  "return document.getElementById('boxed').naturalWidth"),
              "rows": len(browser.find_elements(By.CSS_SELECTOR, "#top5 tr"))}
    browser.save_screenshot(screenshot)
finally:
    browser.quit()
    server.send_signal(2)
    server.wait()
print(json.dumps(result))
"""


def test_demo_end_to_end_in_headless_chromium(checkpoint, tmp_path):
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/setup "
                    "installs them as root)")
    sample = read_split("digits", DIGITS, "test")[3].path
    image = tmp_path / "upload.png"  # a larger copy, so the boxes are visible in the screenshot
    Image.open(sample).convert("RGB").resize((256, 256), Image.Resampling.NEAREST).save(image)
    expected = explain(load(checkpoint), open_image(image)).top5[0]["name"]
    EXAMPLES.mkdir(parents=True, exist_ok=True)
    screenshot = EXAMPLES / "demo.png"
    # Driven from a helper process: this test process may have imported jittor, whose SIGCHLD
    # handler ends the whole process when a child (here chromedriver) dies of a signal.
    done = subprocess.run([sys.executable, "-c", BROWSER, str(checkpoint), str(image),
                           str(screenshot), chromium, driver], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["error"] == ""
    assert result["predicted"] == expected
    assert result["boxed"].startswith("data:image/png;base64,")
    assert result["boxed_width"] == 256 and result["rows"] == 5
    assert Image.open(screenshot).size[0] > 0
