#!/usr/bin/env python3
"""The chat page of a running `wgpu-llm serve` (tests/serve.rs passes its base URL) in headless Chromium,
driven through WebDriver (selenium with Debian's chromedriver; no driver download): type a message, send it,
and see a reply stream in (the page counts the streamed deltas it appended: at least two) and the tokens/s
line appear.
Prints "ok" on success; any failure raises."""
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

base = sys.argv[1]
opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]:
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
try:
    driver.get(base + "/")
    box = driver.find_element(By.ID, "msg")
    box.send_keys("Hello there")
    driver.find_element(By.ID, "send").click()
    lengths, deadline = [], time.time() + 120
    while time.time() < deadline:
        replies = driver.find_elements(By.CSS_SELECTOR, "#log .assistant")
        text = replies[-1].text if replies else ""
        if text and (not lengths or len(text) != lengths[-1]):
            lengths.append(len(text))
        stats = driver.find_element(By.ID, "stats").text
        if "tokens/s" in stats:
            break
        time.sleep(0.02)
    else:
        raise AssertionError(f"no finished reply in 120 s (reply lengths seen: {lengths})")
    user = driver.find_elements(By.CSS_SELECTOR, "#log .user")
    assert user and user[-1].text == "Hello there", [u.text for u in user]
    chunks = int(replies[-1].get_attribute("data-chunks") or 0)
    tokens = int(stats.split()[0])
    assert tokens < 2 or chunks >= 2, f"the reply did not stream: {chunks} deltas for {tokens} tokens ({stats})"
    assert "error" not in replies[-1].text, replies[-1].text
    print("ok", stats, f"({chunks} deltas, reply lengths seen while polling: {lengths})")
finally:
    driver.quit()
