"""digest.html in a real browser: headless Chromium (Debian's `chromium` package; .ci/run installs it).

The digest is built from the known database of test_digest.py plus posts that try to load things
from a trap HTTP server on 127.0.0.1. Chromium takes a screenshot and dumps the DOM; a third run
records every network request of the page over the DevTools protocol. Checked: every theme heading
is shown, no hostile script ran (it would have changed document.title), the page asked for nothing
but itself (no DevTools Network event other than the file:// page, and no hit on the trap server),
and a phone-wide window needs no sideways scrolling. A missing Chromium is a failure, not a skip.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
from test_digest import build, post

from classify.grouping import assign_groups
from innoverheid.config import Config
from report.digest import write_digest
from report.i18n import THEME_NAMES

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parent.parent
TITLE = "Ideeën onder #innoverheid, per thema van het charter"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--disable-extensions", "--mute-audio"]


def chromium() -> str:
    path = os.environ.get("INNOVERHEID_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path and Path("/usr/bin/chromium").exists():
        path = "/usr/bin/chromium"
    if not path:
        pytest.fail("headless Chromium is needed for this test but was not found: install Debian's package "
                    "(apt-get install chromium) or set INNOVERHEID_CHROMIUM to its path; CI installs it in .ci/run")
    return path


class _Trap(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - the stdlib's name
        _Trap.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def trap():
    _Trap.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trap)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def page(db, tmp_path, trap) -> Path:
    """digest.html from the known database plus posts that point at the trap server."""
    hostile = [
        (post("bluesky", "t1", f'<img src="{trap}/img" onerror="document.title=\'pwned\'">'
              f'<iframe src="{trap}/frame"></iframe> Geef teams ruimte om te experimenteren', "trap1", 5,
              url=f"{trap}/link"), ["ruimte_voor_de_professional"], 0.9),
        (post("bluesky", "t2", f'</bdi></blockquote><script src="{trap}/js"></script><script>document.title='
              f"'pwned'</script><link rel=stylesheet href=\"{trap}/css\"><div style=\"background:url({trap}/bg)\">"
              "Leer van elke mislukte pilot", "trap2", 6), ["open_cultuur"], 0.9),
        (post("mastodon", "t3", f'<video poster="{trap}/poster"></video><object data="{trap}/obj"></object>'
              f'<meta http-equiv="refresh" content="0;url={trap}/refresh"> Samen inkopen met de buurgemeente',
              "trap3", 7, name=f'<img src="{trap}/author">'), ["slimmer_organiseren"], 0.9),
    ]
    from test_digest import POSTS

    build(db, posts=POSTS + hostile)
    assign_groups(db)
    cfg = Config.model_validate({"report": {"min_posts_for_chart": 2}})
    return write_digest(cfg, db, out_dir=tmp_path / "out").html_path


def _run(args: list[str], tmp: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={tmp / name}", *args], capture_output=True,
                          timeout=90, check=False)


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def _devtools(page_url: str, tmp: Path) -> dict:
    """Open the page in Chromium over the DevTools protocol; return its network requests, title and widths."""
    from websockets.sync.client import connect

    profile = tmp / "cdp-profile"
    proc = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            assert proc.poll() is None, "Chromium exited before opening its DevTools port"
            assert time.monotonic() < deadline, "Chromium did not open its DevTools port within 30 s"
            time.sleep(0.05)
        port, path = port_file.read_text().split()[:2]
        events: list[dict] = []
        with connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=30) as ws:
            counter = iter(range(1, 1_000_000))

            def call(method: str, params: dict | None = None, session: str | None = None) -> dict:
                msg_id = next(counter)
                msg = {"id": msg_id, "method": method, "params": params or {}}
                if session:
                    msg["sessionId"] = session
                ws.send(json.dumps(msg))
                while True:
                    reply = json.loads(ws.recv(timeout=30))
                    if reply.get("id") == msg_id:
                        assert "error" not in reply, reply
                        return reply.get("result", {})
                    events.append(reply)

            def wait_for(method: str, seconds: float) -> bool:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    if any(e.get("method") == method for e in events):
                        return True
                    try:
                        events.append(json.loads(ws.recv(timeout=max(0.01, end - time.monotonic()))))
                    except TimeoutError:
                        break
                return any(e.get("method") == method for e in events)

            target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            call("Network.enable", session=session)
            call("Page.enable", session=session)
            call("Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 1,
                                                        "mobile": True}, session)
            call("Page.navigate", {"url": page_url}, session)
            assert wait_for("Page.loadEventFired", 30), "the page did not finish loading"
            wait_for("never.happens", 1.0)  # let any late request show up
            evaluate = {"returnByValue": True}
            title = call("Runtime.evaluate", {"expression": "document.title", **evaluate}, session)
            widths = call("Runtime.evaluate", {"expression": "[document.documentElement.scrollWidth, "
                                               "window.innerWidth]", **evaluate}, session)
            call("Target.closeTarget", {"targetId": target})
        requests = [e["params"]["request"]["url"] for e in events
                    if e.get("method") == "Network.requestWillBeSent" and e.get("sessionId") == session]
        return {"requests": requests, "title": title["result"]["value"], "widths": widths["result"]["value"]}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_digest_in_headless_chromium(page, tmp_path, trap):
    url = page.resolve().as_uri()

    shot = tmp_path / "digest.png"
    result = _run([f"--screenshot={shot}", "--window-size=1000,1500", url], tmp_path, "profile-shot")
    assert shot.is_file(), f"no screenshot: {result.stderr.decode(errors='replace')[-2000:]}"
    assert _png_size(shot) == (1000, 1500)
    if os.environ.get("INNOVERHEID_UPDATE_SCREENSHOTS"):  # refresh the committed copy on purpose only
        shutil.copyfile(shot, REPO / "docs" / "digest-test.png")

    dom = _run(["--dump-dom", url], tmp_path, "profile-dom").stdout.decode("utf-8")
    assert f"<title>{TITLE}</title>" in dom, "the title changed: a script from the data ran"
    for label in ("open_cultuur", "leiderschap", "ruimte_voor_de_professional", "sturen_op_talent", "netwerken",
                  "flexibilisering", "slimmer_organiseren"):
        assert f'<h2 id="thema-{label}">{THEME_NAMES["nl"][label]}</h2>' in dom, label
    lowered = dom.lower()
    for element in ("<script", "<img", "<iframe", "<link", "<video", "<object", "<meta http-equiv=\"refresh"):
        assert element not in lowered, f"{element} became an element"
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom  # shown, as text
    assert "Leer van elke mislukte pilot" in dom

    seen = _devtools(url, tmp_path)
    assert seen["title"] == TITLE
    assert seen["requests"] == [url], f"the page made requests besides itself: {seen['requests']}"
    scroll_width, inner_width = seen["widths"]
    assert scroll_width <= inner_width, f"on a phone the page scrolls sideways ({scroll_width} > {inner_width})"
    assert _Trap.hits == [], f"the trap server was contacted: {_Trap.hits}"
