"""Real headless Chromium (the Debian package), driven over the DevTools protocol.

Tests load pages in it and read what they show: `Chromium.open(url)` returns a `Page` whose
`evaluate(js)` returns a value, `wait_for(js, timeout_s)` returns the first truthy value (or
fails naming the expression), and `screenshot()` returns PNG bytes.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1280,1100"]


class Chromium:
    def __init__(self, profile_dir: Path, start_timeout_s: float = 60.0) -> None:
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile_dir}", "--remote-debugging-port=0",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        found = threading.Event()
        url: list[str] = []

        def drain() -> None:  # read all of stderr, so Chromium never blocks on a full pipe
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.stderr.append(line)
                m = re.search(r"DevTools listening on (ws://\S+)", line)
                if m and not url:
                    url.append(m.group(1))
                    found.set()
            found.set()

        threading.Thread(target=drain, daemon=True).start()
        if not found.wait(start_timeout_s) or not url:
            self.close()
            raise RuntimeError("Chromium did not start: " + "".join(self.stderr[-20:]))
        # Entered as a context manager (websockets asks for it); closed in close().
        self.ws: ClientConnection = connect(url[0], max_size=64 * 1024 * 1024,
                                            open_timeout=20).__enter__()
        self._ids = itertools.count(1)

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout_s: float = 30.0) -> dict[str, Any]:
        ident = next(self._ids)
        request: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            request["sessionId"] = session
        self.ws.send(json.dumps(request))
        give_up = time.monotonic() + timeout_s
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.01, give_up - time.monotonic())))
            if reply.get("id") == ident:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result

    def open(self, url: str) -> Page:
        target = self.call("Target.createTarget", {"url": url})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        return Page(self, session["sessionId"])

    def close(self) -> None:
        try:
            if hasattr(self, "ws"):
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Page:
    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser = browser
        self.session = session

    def evaluate(self, expression: str) -> Any:
        result = self.browser.call("Runtime.evaluate", {
            "expression": expression, "returnByValue": True, "awaitPromise": True},
            self.session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 30.0) -> Any:
        give_up = time.monotonic() + timeout_s
        while True:
            try:
                value = self.evaluate(expression)
            except RuntimeError:
                value = None  # the page is still loading
            if value:
                return value
            if time.monotonic() > give_up:
                raise AssertionError(f"not true within {timeout_s} s: {expression} "
                                     f"(last value {value!r})")
            time.sleep(0.05)

    def screenshot(self, selector: str | None = None) -> bytes:
        """PNG of the page, or of the element `selector` names (only its box, so colours
        elsewhere on the page, such as the plots' series, are not in the picture)."""
        params: dict[str, Any] = {"format": "png"}
        if selector is not None:
            box = self.evaluate(
                f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                ".getBoundingClientRect(); return {x: r.x + window.scrollX, "
                "y: r.y + window.scrollY, width: r.width, height: r.height, scale: 1} })()")
            params.update(clip=box, captureBeyondViewport=True)
        data = self.browser.call("Page.captureScreenshot", params, self.session)
        return base64.b64decode(data["data"])
