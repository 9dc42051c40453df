"""The README's picture of `vosuite app`: headless Chromium on the generated demo clip, its first
mask imported, followed by the shipped student, shown at frame 10.

    python scripts/app_screenshot.py docs/img/app.png
"""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from vosuite.app.server import create_app
from vosuite.datasets.synthetic import SyntheticClipConfig, write_clip


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_clip(Path(tmp) / "demo", SyntheticClipConfig())
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(create_app(Path(tmp)), host="127.0.0.1", port=port,
                                               log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--window-size=1280,900", f"--user-data-dir={tmp}/profile"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)
        try:
            wait = WebDriverWait(driver, 300)
            driver.get(f"http://127.0.0.1:{port}")
            wait.until(lambda d: len(Select(d.find_element(By.ID, "model")).options) > 3)
            driver.find_element(By.ID, "path-input").send_keys(str(root / "JPEGImages" / "shapes"))
            driver.find_element(By.ID, "open-path").click()
            wait.until(lambda d: "40 frames" in d.find_element(By.ID, "video-info").text)
            driver.find_element(By.ID, "import-mask").send_keys(str(root / "Annotations" / "shapes" / "00000.png"))
            wait.until(lambda d: "imported" in d.find_element(By.ID, "message").text)
            driver.find_element(By.ID, "propagate-forward").click()
            wait.until(lambda d: d.find_element(By.ID, "job-text").get_attribute("data-state") == "done")
            driver.execute_script("const s = document.getElementById('frame-slider'); s.value = 10;"
                                  "s.dispatchEvent(new Event('input'));")
            wait.until(lambda d: d.find_element(By.ID, "frame-text").text.startswith("frame 10 "))
            time.sleep(0.5)
            driver.save_screenshot(str(out))
        finally:
            driver.quit()
            server.should_exit = True
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/app.png"))
