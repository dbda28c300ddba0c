"""The web page in a real browser (headless Chromium through chromedriver and Selenium),
driven by tests/web.rs against a running atalaya.

Environment: ATALAYA_URL (the running service), ATALAYA_TOKEN (its fake API token),
ALERT_FP (the fingerprint of a rule alert that fired and resolved), SHOTS (where screenshots
go), AXE (axe-core's axe.min.js). Prints one line per check; exits non-zero on the first
failure, saying what was expected and what was found.
"""

import json
import os
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

URL = os.environ["ATALAYA_URL"]
TOKEN = os.environ["ATALAYA_TOKEN"]
ALERT_FP = os.environ["ALERT_FP"]
SHOTS = os.environ["SHOTS"]
AXE = open(os.environ["AXE"], encoding="utf-8").read()
PATIENCE = 20.0
SIZES = [("phone", 360, 740), ("desktop", 1280, 800)]
MAX_PAGE_BYTES = 100_000


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


def until(what, probe, patience=PATIENCE):
    """Waits for probe() to return something true, within patience seconds."""
    deadline = time.monotonic() + patience
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except Exception as e:  # a stale element while the page refreshes: try again
            last = e
        if last and not isinstance(last, Exception):
            print(f"ok: {what}", flush=True)
            return last
        time.sleep(0.1)
    print(f"FAILED: {what} (last: {last!r})", flush=True)
    sys.exit(1)


def api(method, path, body=None):
    request = urllib.request.Request(
        URL + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
        return json.loads(text) if text else None


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tempfile.mkdtemp(prefix='atalaya-chromium-')}",
        "--lang=en-US",
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(PATIENCE)
    driver.set_script_timeout(PATIENCE)
    return driver


def console_errors(driver):
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def dark(driver, on):
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark" if on else "light"}]},
    )


def axe(driver, name):
    """axe-core in the page: no serious or critical violation."""
    driver.execute_script(AXE)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3)}))))"
        ".catch(e => done([{id: 'axe failed', impact: 'critical', nodes: [String(e)]}]));"
    )
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    check(not bad, f"axe: no serious or critical violation on {name} ({bad})")


def page_weight(driver):
    """Bytes the page and everything it loaded took (uncompressed)."""
    return driver.execute_script(
        "const nav = performance.getEntriesByType('navigation')[0];"
        "let total = nav ? nav.decodedBodySize : 0;"
        "for (const r of performance.getEntriesByType('resource')) total += r.decodedBodySize;"
        "return total;"
    )


def visit(driver, path, name, title):
    """Loads a page fresh at every size, light and dark: its heading, no console error,
    under the weight budget, headings in order, axe clean; a screenshot of each size."""
    for size, width, height in SIZES:
        driver.set_window_size(width, height)
        driver.get_log("browser")  # forget what came before
        driver.get(URL + path)
        until(f"{name} at {size}: heading {title!r}", lambda: driver.find_element(By.TAG_NAME, "h1").text == title)
        weight = page_weight(driver)
        check(weight < MAX_PAGE_BYTES, f"{name} at {size}: {weight} bytes on first load, under {MAX_PAGE_BYTES}")
        levels = driver.execute_script(
            "return [...document.querySelectorAll('h1,h2,h3,h4')].map(h => Number(h.tagName[1]));"
        )
        jumps = [b for a, b in zip(levels, levels[1:]) if b > a + 1]
        check(levels and levels[0] == 1 and not jumps, f"{name} at {size}: headings in order {levels}")
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth;")
        check(overflow <= 0, f"{name} at {size}: no sideways scrolling ({overflow} px too wide)")
        for scheme in (False, True):
            dark(driver, scheme)
            axe(driver, f"{name} at {size}{' (dark)' if scheme else ''}")
        dark(driver, False)
        driver.save_screenshot(os.path.join(SHOTS, f"{name}-{size}.png"))
        errors = console_errors(driver)
        check(not errors, f"{name} at {size}: no console errors ({errors})")


def main():
    driver = browser()
    try:
        run(driver)
    finally:
        driver.quit()


def run(driver):
    # Not logged in: the login form, and a wrong token refused.
    driver.get(URL + "/")
    until("a guest is asked to log in", lambda: driver.find_element(By.ID, "login-token"))
    visit(driver, "/login", "login", "Log in")
    driver.find_element(By.ID, "login-name").send_keys("Ana")
    driver.find_element(By.ID, "login-token").send_keys("wrong-token")
    driver.find_element(By.CSS_SELECTOR, "form.stack button").click()
    until("a wrong token is refused", lambda: "Wrong token." in driver.page_source)

    # A login form whose CSRF token was tampered with (as a foreign site's would be).
    driver.execute_script("document.querySelector('input[name=csrf]').value = 'forged';")
    driver.find_element(By.ID, "login-name").send_keys("Ana")
    driver.find_element(By.ID, "login-token").send_keys(TOKEN)
    driver.find_element(By.CSS_SELECTOR, "form.stack button").click()
    until("a forged CSRF token is refused", lambda: "stale or came from another site" in driver.page_source)

    driver.get(URL + "/login")
    driver.find_element(By.ID, "login-name").send_keys("Ana")
    driver.find_element(By.ID, "login-token").send_keys(TOKEN)
    driver.find_element(By.CSS_SELECTOR, "form.stack button").click()
    until("logged in as Ana", lambda: "Logged in as Ana" in driver.find_element(By.CLASS_NAME, "account").text)
    cookies = {c["name"]: c for c in driver.get_cookies()}
    session = cookies.get("atalaya_session", {})
    check(session.get("httpOnly") and session.get("sameSite") == "Strict", "the session cookie is HttpOnly and SameSite=Strict")
    check(TOKEN not in session.get("value", ""), "the token is not in the cookie")

    # An alert posted over HTTP shows up without a reload.
    driver.set_window_size(1280, 800)
    driver.get(URL + "/")
    driver.execute_script("window.notReloaded = true;")
    api("POST", "/api/v2/alerts", [{
        "labels": {"alertname": "DoorOpen", "room": "kitchen", "severity": "warning"},
        "annotations": {"summary": "The kitchen door is open", "description": "<script>window.pwned = true</script>\u202eevil " + "x" * 65536},
    }])
    api("POST", "/api/v2/alerts", [{
        "labels": {"alertname": "FreezerWarm", "room": "garage", "severity": "critical"},
        "annotations": {"summary": "The freezer is at -8 °C", "description": "Check the door seal."},
    }])
    card = "article.alert[data-fingerprint]"
    until("the posted alert appears without a reload", lambda: any(
        "The kitchen door is open" in c.text for c in driver.find_elements(By.CSS_SELECTOR, card)
    ) and driver.execute_script("return window.notReloaded === true;"))
    check(driver.execute_script("return window.pwned === undefined;"), "a hostile annotation did not run")
    check("&lt;script&gt;" in driver.execute_script("return document.getElementById('live').innerHTML;"), "a hostile annotation is shown escaped")

    # Every page, at both sizes.
    visit(driver, "/", "alerts", "Alerts")
    visit(driver, "/silences", "silences", "Silences")
    visit(driver, "/silences/new", "silence-form", "New silence")
    visit(driver, "/rules", "rules", "Rules")
    visit(driver, "/deliveries", "deliveries", "Deliveries")
    visit(driver, "/status", "status", "Status")
    visit(driver, f"/alerts/{ALERT_FP}/history", "history", "History · kitchen_hot")

    # The alert's history tells its transitions.
    timeline = driver.find_element(By.CSS_SELECTOR, "ol.timeline").text
    check("firing" in timeline and "resolved" in timeline, "the history shows the alert firing and resolved")

    # A silence from the form: the count while typing, then in the API, and the alert greyed.
    driver.set_window_size(360, 740)
    driver.get(URL + "/silences/new")
    driver.find_element(By.ID, "matchers").send_keys('alertname="DoorOpen"')
    until("the form says it matches 1 alert", lambda: driver.find_element(By.ID, "match-count").text == "1")
    duration = driver.find_element(By.ID, "duration")
    duration.clear()
    duration.send_keys("1h")
    driver.find_element(By.ID, "comment").send_keys("fixing the latch")
    driver.find_element(By.CSS_SELECTOR, "#silence-form button[type=submit]").click()
    until("back on the silences list", lambda: driver.find_element(By.TAG_NAME, "h1").text == "Silences")
    silences = api("GET", "/api/v2/silences")
    mine = [s for s in silences if s["status"]["state"] == "active" and s["comment"] == "fixing the latch"]
    check(len(mine) == 1 and mine[0]["createdBy"] == "Ana", f"the silence is in /api/v2/silences, created by Ana ({silences})")
    silence_id = mine[0]["id"]
    driver.get(URL + "/")
    door = until("the alert is shown silenced", lambda: [
        c for c in driver.find_elements(By.CSS_SELECTOR, "article.alert.silenced")
        if "The kitchen door is open" in c.text
    ])[0]
    check("grayscale" in door.value_of_css_property("filter"), "the silenced alert is greyed")

    # Edit it: the same silence, longer, with a new comment.
    driver.get(URL + "/silences")
    driver.find_element(By.CSS_SELECTOR, f"article[data-silence='{silence_id}'] a.button").click()
    until("the edit form", lambda: driver.find_element(By.TAG_NAME, "h1").text == "Edit silence")
    check(driver.find_element(By.ID, "matchers").get_attribute("value") == 'alertname="DoorOpen"', "the form holds the silence's matchers")
    duration = driver.find_element(By.ID, "duration")
    duration.clear()
    duration.send_keys("2h")
    comment = driver.find_element(By.ID, "comment")
    comment.clear()
    comment.send_keys("latch ordered")
    driver.find_element(By.CSS_SELECTOR, "#silence-form button[type=submit]").click()
    until("the edit is in /api/v2/silences", lambda: [
        s for s in api("GET", "/api/v2/silences")
        if s["id"] == silence_id and s["comment"] == "latch ordered" and s["status"]["state"] == "active"
    ])

    # Expire it from the list.
    driver.get(URL + "/silences")
    form = driver.find_element(By.CSS_SELECTOR, f"article[data-silence='{silence_id}'] form")
    form.find_element(By.CSS_SELECTOR, "button").click()
    until("the silence expired", lambda: any(
        s["id"] == silence_id and s["status"]["state"] == "expired" for s in api("GET", "/api/v2/silences")
    ))

    # A silence button whose CSRF token was tampered with is refused, and silences nothing.
    driver.get(URL + "/")
    driver.execute_script("document.querySelectorAll('input[name=csrf]').forEach(i => i.value = 'forged');")
    buttons = driver.find_elements(By.CSS_SELECTOR, "article.alert button[value$=' 1h']")
    check(buttons, "the alert has a silence button")
    before = len(api("GET", "/api/v2/silences"))
    buttons[0].click()
    until("a silence with a forged CSRF token is refused", lambda: "stale or came from another site" in driver.page_source)
    check(len(api("GET", "/api/v2/silences")) == before, "and no silence was made")

    # A refresh keeps the scroll position of a long list.
    api("POST", "/api/v2/alerts", [
        {"labels": {"alertname": f"Noise{i:02}", "severity": "info"}, "annotations": {"summary": f"Noise {i}"}}
        for i in range(40)
    ])
    driver.set_window_size(360, 740)
    driver.get(URL + "/")
    until("the long list is there", lambda: len(driver.find_elements(By.CSS_SELECTOR, "article.alert")) >= 40)
    driver.execute_script(
        "window.scrollTo(0, 1500); window.refreshed = false;"
        "new MutationObserver(() => { window.refreshed = true; })"
        ".observe(document.getElementById('live'), {childList: true});"
    )
    until("the live part refreshed", lambda: driver.execute_script("return window.refreshed;"))
    y = driver.execute_script("return window.scrollY;")
    check(abs(y - 1500) < 2, f"the refresh kept the scroll position ({y})")

    # Spanish, following Accept-Language.
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Accept-Language": "es-ES,es;q=0.9"}})
    driver.get(URL + "/")
    until("the page speaks Spanish", lambda: driver.find_element(By.TAG_NAME, "h1").text == "Alertas")
    check(driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "es", "html lang is es")
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})

    # Logging out ends the session.
    driver.get(URL + "/")
    driver.find_element(By.CSS_SELECTOR, ".account form button").click()
    until("logged out", lambda: driver.find_elements(By.ID, "login-token") or "Log in" in driver.find_element(By.CLASS_NAME, "account").text)
    print("browser checks passed", flush=True)


if __name__ == "__main__":
    main()
