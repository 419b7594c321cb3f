"""The claims page in headless Chromium: upload a photo, wait for the estimate, compare the page with the API.

Needs Debian's ``chromium`` and ``chromium-driver`` (``bash scripts/install_system_deps.sh --browser``). Without them
the test is skipped, except on CI (``CI=true``), where it fails. The screenshot is kept in ``$TEST_ARTIFACTS_DIR``
(default ``test_artifacts/`` in the project root).
"""
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from tests.damage_cost.conftest import ClaimsServer
from tests.damage_cost.test_app import post_photos

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", PROJECT_ROOT / "test_artifacts"))


@pytest.fixture
def browser():
    """Headless Chromium through Selenium, with the flags that keep it off the network and out of a sandbox."""
    if not (CHROMIUM and CHROMEDRIVER):
        message = "chromium and chromedriver are needed (bash scripts/install_system_deps.sh --browser)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_page_shows_the_api_total_and_its_rows_sum_to_it(claims_server: ClaimsServer, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    photo = claims_server.photos[0]
    api = json.loads(post_photos(claims_server.url, [(photo.name, photo.read_bytes())]).data)

    browser.get(f"{claims_server.url}/")
    WebDriverWait(browser, 30).until(lambda driver: "Up to 4 photos" in driver.find_element(By.ID, "limits").text)
    browser.find_element(By.ID, "file-input").send_keys(str(photo.resolve()))
    browser.find_element(By.ID, "estimate-button").click()
    WebDriverWait(browser, 120).until(lambda driver: driver.find_element(By.ID, "results").is_displayed())

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "claims_page.png"))
    card = browser.find_element(By.CSS_SELECTOR, f'.card[data-image="{photo.name}"]')
    shown_total = int(card.find_element(By.CSS_SELECTOR, ".image-total").get_attribute("data-value"))
    row_prices = [int(cell.get_attribute("data-value")) for cell in card.find_elements(By.CSS_SELECTOR, "td.price")]
    expected = api["images"][0]
    assert shown_total == expected["total"] == sum(row_prices)
    assert len(row_prices) == len(expected["damages"]) > 0
    assert card.find_element(By.CSS_SELECTOR, ".image-total").text == f"{expected['total']:,}"
    assert int(browser.find_element(By.ID, "grand-total").get_attribute("data-value")) == expected["total"]
    assert card.find_element(By.CSS_SELECTOR, ".inspection").is_displayed() == expected["inspection_needed"]
    picture = card.find_element(By.CSS_SELECTOR, "img.annotated")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", picture) == 512
    assert not browser.find_element(By.ID, "progress").is_displayed()
    assert not browser.find_element(By.ID, "error").is_displayed()
