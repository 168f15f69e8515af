"""The web console in a real browser (Debian's chromium through Selenium and the Debian
chromedriver) against the session's live gateway: sign in, create a sandbox video from
the form, watch it complete, play and seek it, remix it, compare two models, delete,
see usage; an admin creates and revokes a key; a reader key sees no create button.

Each page is photographed at desktop (1280x800) and phone (390x844) width into
``$VIDGATE_SCREENSHOTS`` (else a temporary folder); the paths are listed at the end of
the run (tests/conftest.py's terminal summary) and printed by the test."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.chromium import chromium_installed, headless_chromium
from tests.conftest import ServerProcess, png_bytes

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (the dev extra)")
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow

SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
TIMEOUT = 20
PAGE = 24  # pages/gallery.js: videos per page
COMPLETED = 6  # the reader's gallery: videos with a thumbnail


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless chromium for the module."""
    if not chromium_installed():
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/test does)")
    driver = headless_chromium(
        1280,
        800,
        script_timeout_s=TIMEOUT,
        extra_args=("--mute-audio", "--autoplay-policy=no-user-gesture-required"),
    )
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("VIDGATE_SCREENSHOTS")
    path = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Console:
    """The console as a person drives it, with the waits it needs."""

    def __init__(
        self, driver: WebDriver, base_url: str, shots: Path, request: pytest.FixtureRequest
    ) -> None:
        self.d = driver
        self.base = base_url
        self.shots = shots
        self.request = request

    def wait(self, check: Callable[[], Any], what: str) -> Any:
        try:
            return WebDriverWait(self.d, TIMEOUT, poll_frequency=0.05).until(
                lambda _: check(), message=what
            )
        except WebDriverException as exc:
            raise AssertionError(f"waited for {what}: {exc}\n{self.logs()}") from exc

    def logs(self) -> str:
        try:
            return "\n".join(str(e) for e in self.d.get_log("browser"))
        except WebDriverException:
            return ""

    def assert_no_csp_violation(self) -> None:
        """The pages work under their own Content-Security-Policy: chromium logs every
        refusal of it."""
        refused = [line for line in self.logs().splitlines() if "Content Security Policy" in line]
        assert not refused, refused

    def js(self, script: str, *args: Any) -> Any:
        return self.d.execute_script(script, *args)

    def find(self, css: str) -> WebElement | None:
        found = self.d.find_elements(By.CSS_SELECTOR, css)
        return found[0] if found else None

    def text(self, css: str) -> str:
        return str(
            self.js(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''", css
            )
        )

    def open(self, page: str, ready_css: str) -> None:
        self.d.get(f"{self.base}/ui/#/{page}")
        self.wait(lambda: self.find(ready_css), f"{ready_css} on #/{page}")

    def sign_in(self, key: str) -> None:
        self.d.get(f"{self.base}/")
        self.js("sessionStorage.clear()")
        self.d.refresh()
        self.wait(lambda: self.find("input[name=key]"), "the sign-in form")
        # By keyboard: the key, then Enter.
        self.find("input[name=key]").send_keys(key + Keys.ENTER)  # type: ignore[union-attr]
        self.wait(lambda: self.find("#who button"), "signed in")

    def nav(self) -> list[str]:
        return [a.text for a in self.d.find_elements(By.CSS_SELECTOR, "#nav a")]

    def fill(self, css: str, value: str) -> None:
        element = self.find(css)
        assert element is not None, css
        element.clear()
        element.send_keys(value)

    def shoot(self, name: str, at: str | None = None) -> None:
        """The page at desktop and at phone width: its top, or the element ``at``.
        Every form control on it has a label."""
        unlabelled = self.js(
            "return [...document.querySelectorAll('input, select, textarea')]"
            ".filter(c => !c.labels || !c.labels.length).map(c => c.outerHTML)"
        )
        assert not unlabelled, f"controls without a <label> on {name}: {unlabelled}"
        for size, (width, height) in SIZES.items():
            self.d.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {
                    "width": width,
                    "height": height,
                    "deviceScaleFactor": 1,
                    "mobile": size == "phone",
                },
            )
            self.js(
                "const e = arguments[0] && document.querySelector(arguments[0]);"
                "if (e) e.scrollIntoView({block: 'center'}); else window.scrollTo(0, 0)",
                at,
            )
            path = self.shots / f"{name}-{size}.png"
            self.d.save_screenshot(str(path))
            self.request.node.user_properties.append(("screenshot", str(path)))
            print(f"screenshot: {path}")
        self.d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


@pytest.fixture
def console(
    browser: WebDriver, server: ServerProcess, shots_dir: Path, request: pytest.FixtureRequest
) -> Console:
    return Console(browser, server.base_url, shots_dir, request)


def _api(server: ServerProcess, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


def _video_id_in_hash(console: Console) -> str:
    return str(console.js("return decodeURIComponent(location.hash.split('/')[2] || '')"))


def _completed_detail(console: Console) -> None:
    console.wait(
        lambda: console.text("[data-field=status]") == "completed" and console.find(".stage video"),
        "the detail page of a completed video",
    )


def test_a_person_makes_watches_remixes_compares_deletes_and_sees_usage(
    console: Console, server: ServerProcess, tmp_path: Path
) -> None:
    key = server.create_key("console admin", "--tenant", "console-a", "--role", "admin")
    console.sign_in(key)
    assert console.nav() == ["Create", "Gallery", "Compare", "Usage", "Admin"]

    # Create: the form offers the model's own choices, the estimate follows it, an error
    # says which parameter was wrong.
    console.open("create", "textarea[name=prompt]")
    console.find("textarea[name=prompt]").send_keys("a paper boat on a river")  # type: ignore[union-attr]
    console.fill("input[name=seconds]", "99")
    console.wait(lambda: "parameter: seconds" in console.text(".error"), "the error naming seconds")
    console.fill("input[name=seconds]", "2")
    console.js(
        "const s = document.querySelector('select[name=resolution]'); s.value = '360p';"
        "s.dispatchEvent(new Event('change', {bubbles: true}))"
    )
    console.wait(lambda: "2 s at 640x360" in console.text(".estimate"), "the estimate")
    first_frame = tmp_path / "first.png"
    first_frame.write_bytes(png_bytes(64, 36, (0, 128, 255)))
    console.find("input[name=input_reference]").send_keys(str(first_frame))  # type: ignore[union-attr]
    console.shoot("create")
    console.find("form button.primary").click()  # type: ignore[union-attr]
    console.wait(lambda: console.find(".result video"), "the player after the video completed")
    video_id = console.text(".result a")
    assert video_id.startswith("video_")
    with _api(server, key) as api:
        sent = api.get(f"/v1/videos/{video_id}/details").json()["request"]
    assert [image["role"] for image in sent["images"]] == ["input_reference"]

    # The player plays, and seeks (the signed link answers Range requests).
    played = console.d.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const v = document.querySelector('.result video');
        v.muted = true;
        v.play().then(() => {
          const seeked = () => done({t: v.currentTime, ready: v.readyState});
          v.addEventListener('seeked', seeked, {once: true});
          v.currentTime = 1.5;
        }, (e) => done({error: String(e)}));
        """
    )
    assert "error" not in played, played
    assert abs(played["t"] - 1.5) < 0.1, played
    assert played["ready"] >= 2, played
    console.shoot("create-done", at=".result")

    # Gallery: the tile with its thumbnail (requested once in view); hovering scrubs the
    # spritesheet.
    console.open("gallery", f".tile[data-id='{video_id}'] img[src]")
    frame = console.find(f".tile[data-id='{video_id}'] .frame")
    ActionChains(console.d).move_to_element_with_offset(frame, 40, 0).perform()
    sprite = console.wait(
        lambda: console.js(
            "const s = document.querySelector(arguments[0]); return s && s.style.backgroundImage",
            f".tile[data-id='{video_id}'] .sprite",
        ),
        "the spritesheet on hover",
    )
    assert "variant=spritesheet" in sprite
    console.shoot("gallery")

    # Detail, then remix from it: the remix opens, runs and completes.
    console.find(f".tile[data-id='{video_id}']").send_keys(Keys.ENTER)  # type: ignore[union-attr]
    _completed_detail(console)
    assert '"prompt": "a paper boat on a river"' in console.text("pre.json")
    console.shoot("detail")
    console.fill("input[name=remix_prompt]", "the same boat at night")
    console.find("form[aria-label=Remix] button").click()  # type: ignore[union-attr]
    console.wait(lambda: _video_id_in_hash(console) not in ("", video_id), "the remix's page")
    remix_id = _video_id_in_hash(console)
    _completed_detail(console)
    assert f"remix of {video_id}" in console.text(".facts")
    # Extend the remix by a second: a video of the remix's seconds and one more.
    console.fill("input[name=extend_prompt]", "and then the sun rises")
    console.fill("input[name=seconds]", "1")
    console.find("form[aria-label=Extend] button").click()  # type: ignore[union-attr]
    console.wait(lambda: _video_id_in_hash(console) not in ("", remix_id), "the extension's page")
    _completed_detail(console)
    assert "extend" in console.text(".facts")
    assert "3 s" in console.text(".facts")

    # Delete the extension: two steps, then it is gone from the API.
    extension_id = _video_id_in_hash(console)
    console.d.find_element(By.XPATH, "//button[text()='Delete']").click()
    console.d.find_element(By.XPATH, "//button[text()='Yes, delete it']").click()
    console.wait(lambda: console.find(".gallery"), "the gallery after delete")
    with _api(server, key) as api:
        assert api.get(f"/v1/videos/{extension_id}").status_code == 404

    # Compare two models side by side, each with its cost and time.
    console.open("compare", "input[name=model]")
    console.js(
        "for (const c of document.querySelectorAll('input[name=model]'))"
        " c.checked = ['sandbox', 'sora-2'].includes(c.value)"
    )
    console.find("textarea[name=prompt]").send_keys("two takes of one prompt")  # type: ignore[union-attr]
    console.find("form button.primary").click()  # type: ignore[union-attr]
    console.wait(
        lambda: (
            console.js(
                "return [...document.querySelectorAll('.column .stats')]"
                ".filter(s => s.textContent.startsWith('completed')).length"
            )
            == 2
        ),
        "both compared videos completed",
    )
    assert [
        c.get_attribute("data-model") for c in console.d.find_elements(By.CSS_SELECTOR, ".column")
    ] == ["sandbox", "sora-2"]
    assert "cost $" in console.text(".column[data-model='sora-2'] .stats")
    console.shoot("compare")

    # Usage: the completed test videos, charted and tabled.
    console.open("usage", ".usage table")
    console.wait(lambda: console.find(".usage tbody tr"), "usage rows")
    assert console.find(".usage svg.chart rect") is not None
    console.shoot("usage")
    console.assert_no_csp_violation()


def test_an_admin_creates_and_revokes_a_key(console: Console, server: ServerProcess) -> None:
    owner = server.create_key("console owner", "--tenant", "console-b", "--role", "admin")
    console.sign_in(owner)
    console.open("admin", "form[aria-label='create a key'] input[name=name]")
    console.wait(lambda: console.find("#admin-deployments tbody tr"), "the deployments table")
    console.fill("form[aria-label='create a key'] input[name=name]", "made in the console")
    console.find("form[aria-label='create a key'] button").click()  # type: ignore[union-attr]
    secret = console.wait(lambda: console.text(".secret-value"), "the new key's secret")
    assert secret.startswith("vg_test_")
    # A budget, and a webhook endpoint with its secret shown once and its deliveries.
    console.fill("#admin-budgets input[name=usd]", "5")
    console.find("#admin-budgets form button").click()  # type: ignore[union-attr]
    console.wait(lambda: "$5.00" in console.text("#admin-budgets tbody"), "the budget")
    console.fill("#admin-webhooks input[name=url]", "https://hooks.example.com/vidgate")
    console.find("#admin-webhooks form button").click()  # type: ignore[union-attr]
    console.wait(lambda: console.text("#admin-webhooks .secret-value"), "the endpoint's secret")
    assert console.text("#admin-webhooks .secret-value").startswith("whsec_")
    console.d.find_element(
        By.XPATH, "//section[@id='admin-webhooks']//button[text()='Deliveries']"
    ).click()
    console.wait(
        lambda: "Deliveries to https://hooks.example.com" in console.text(".deliveries"),
        "deliveries",
    )
    with _api(server, secret) as api:
        me = api.get("/v1/me").json()
        assert me["name"] == "made in the console"
        console.shoot("admin")
        console.find(f"button[data-key='{me['id']}']").click()  # type: ignore[union-attr]
        console.wait(lambda: not console.find(f"button[data-key='{me['id']}']"), "the revoke")
        _until_refused(api)

    # A key revoked while it is signed in: the next call's 401 brings the sign-in back.
    member = server.create_key("console member", "--tenant", "console-b")
    console.sign_in(member)
    with _api(server, owner) as admin, _api(server, member) as api:
        member_id = api.get("/v1/me").json()["id"]
        assert admin.delete(f"/v1/admin/keys/{member_id}").status_code == 200
        _until_refused(api)
    console.open("create", "textarea[name=prompt]")
    console.open("gallery", "form.signin .error")
    assert "key" in console.text("form.signin .error").lower()


def _until_refused(api: httpx.Client) -> None:
    deadline = time.monotonic() + 3
    while api.get("/v1/me").status_code != 401:
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.1)


def test_a_reader_scrolls_and_filters_the_gallery_and_sees_no_buttons_that_would_fail(
    console: Console, server: ServerProcess
) -> None:
    member = server.create_key("console member", "--tenant", "console-c")
    reader = server.create_key("console reader", "--tenant", "console-c", "--role", "reader")
    with _api(server, member) as api:
        body = {"model": "sandbox", "prompt": "read only", "seconds": 1, "size": "320x240"}
        # With the completed videos, more than the gallery's first page (24), failing at
        # once (no clip to render).
        failing = {**body, "prompt": "refused", "metadata": {"sandbox_fail": "submit"}}
        for _ in range(PAGE):
            assert api.post("/v1/videos", json=failing).status_code == 200
        # The newest: a first row of thumbnails and one more (5 columns at 1280 px).
        videos = [api.post("/v1/videos", json=body).json() for _ in range(COMPLETED)]
        deadline = time.monotonic() + TIMEOUT
        for video in videos:
            while api.get(f"/v1/videos/{video['id']}").json()["status"] != "completed":
                assert time.monotonic() < deadline
                time.sleep(0.1)
    console.sign_in(reader)
    assert console.nav() == ["Gallery"]
    console.open("create", ".gallery")  # not a page for this key: the gallery instead
    assert not console.find("textarea[name=prompt]")
    _only_thumbnails_in_view_are_requested(console)

    # Endless scroll: the first page, then the next cursor page at the end of the grid.
    console.wait(lambda: len(console.d.find_elements(By.CSS_SELECTOR, ".tile")) == PAGE, "page 1")
    console.js("document.querySelector('.more').scrollIntoView()")
    console.wait(
        lambda: len(console.d.find_elements(By.CSS_SELECTOR, ".tile")) == PAGE + COMPLETED,
        "page 2",
    )
    console.shoot("gallery-many")
    # Filters: the query parameters of GET /v1/videos.
    console.js(
        "const s = document.querySelector('select[name=status]'); s.value = 'completed';"
        "s.dispatchEvent(new Event('change', {bubbles: true}))"
    )
    console.wait(
        lambda: (
            sorted(
                str(t.get_attribute("data-id"))
                for t in console.d.find_elements(By.CSS_SELECTOR, ".tile")
            )
            == sorted(v["id"] for v in videos)
        ),
        "only the completed videos",
    )

    console.open(f"video/{videos[0]['id']}", ".stage video")
    assert console.find("a.button[download]") is not None
    assert not console.d.find_elements(By.CSS_SELECTOR, "main button")
    console.shoot("reader-detail")
    console.assert_no_csp_violation()


# The gallery's tiles (img: its thumbnail), which are in the viewport, and the thumbnail
# URLs the page has requested (resource timings), once the first page is in the DOM
# (pages/gallery.js marks it) and the thumbnails in view have loaded; null until then.
_THUMBNAILS = """
if (!performance.getEntriesByName("gallery:first-page").length) return null;
const tiles = [...document.querySelectorAll(".gallery .tile")].map((tile) => {
  const r = tile.getBoundingClientRect();
  const img = tile.querySelector("img");
  return {
    in_view: r.bottom > 0 && r.top < innerHeight,
    url: img && (img.dataset.src || img.src),
    src: img ? img.getAttribute("src") : null,
    done: img ? img.complete : true,
  };
});
if (tiles.some((t) => t.in_view && t.url && !(t.src && t.done))) return null;
const urls = new Set(tiles.map((t) => t.url));
const requested = performance.getEntriesByType("resource").map((e) => e.name);
return { tiles: tiles, requested: requested.filter((name) => urls.has(name)) };
"""


def _only_thumbnails_in_view_are_requested(console: Console) -> None:
    """A first load of the gallery in a viewport that shows half of its first row of
    thumbnails: those are requested, the next row's are not."""
    top = console.js(
        "return document.querySelector('.gallery').getBoundingClientRect().top + scrollY"
    )
    width, _ = SIZES["desktop"]
    console.d.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": int(top) + 60, "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        console.d.get("about:blank")
        console.d.get(f"{console.base}/ui/#/gallery")
        seen = console.wait(lambda: console.js(_THUMBNAILS), "the thumbnails in view loaded")
    finally:
        console.d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    tiles = seen["tiles"]
    in_view = [t["url"] for t in tiles if t["in_view"] and t["url"]]
    out_of_view = [t for t in tiles if not t["in_view"] and t["url"]]
    assert in_view and out_of_view, tiles  # more thumbnails than fit
    assert sorted(set(seen["requested"])) == sorted(in_view), seen
    assert not [t for t in out_of_view if t["src"]], out_of_view
