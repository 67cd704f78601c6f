"""Open local HTML pages in headless Chromium and report what a person would see go wrong.

Needs nothing beyond the standard library: Chromium is started with `--remote-debugging-port=0`,
its port is read from the `DevToolsActivePort` file it writes into a fresh user-data dir, and the
Chrome DevTools Protocol (CDP, https://chromedevtools.github.io/devtools-protocol/) is spoken over
a minimal RFC 6455 websocket client below. For each page: navigate, wait for the load event,
collect console errors (`Runtime.consoleAPICalled`), uncaught exceptions (`Runtime.exceptionThrown`),
browser log errors such as failed file loads (`Log.entryAdded`), any request that leaves file://
(`Network.requestWillBeSent`), and images that did not decode (`naturalWidth == 0`).

Example:
    >>> problems = check_pages(sorted(atlas.glob("*.html")))
    >>> assert not problems, problems
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
_BROKEN_IMAGES_JS = """
Array.from(document.images)
  .filter(img => !img.complete || img.naturalWidth === 0)
  .map(img => img.getAttribute('src'))
"""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary: $CHROMIUM, else the first of CHROMIUM_NAMES on PATH."""
    env = os.environ.get("CHROMIUM")
    if env and Path(env).is_file():
        return env
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class WebSocket:
    """The client side of RFC 6455, just enough for CDP: text frames, masking, ping, close."""

    def __init__(self, url: str, timeout: float):
        assert url.startswith("ws://"), url
        hostport, _, path = url[len("ws://") :].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        head, self._buf = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"websocket handshake refused: {head.decode(errors='replace')}")

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def recv(self) -> str:
        """The next text message (fragments joined); answers pings on the way."""
        parts: list[bytes] = []
        while True:
            fin, opcode, payload = self._read_frame()
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
            elif opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            elif opcode in (0x0, 0x1, 0x2):
                parts.append(payload)
                if fin:
                    return b"".join(parts).decode()

    def close(self) -> None:
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)  # a client must mask every frame
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def _read_frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read(8))
        mask = self._read(4) if b1 & 0x80 else None  # servers do not mask, but allow it
        payload = self._read(n)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionError("websocket: connection closed")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


class Browser:
    """Headless Chromium with one page driven over CDP; use as a context manager.

    Example:
        >>> with Browser() as b:
        ...     problems = b.check(Path("atlas/index.html"))
    """

    def __init__(self, chromium: str | None = None, timeout: float = 20.0, width: int = 1280, height: int = 900):
        self.chromium = chromium or find_chromium()
        if not self.chromium:
            raise FileNotFoundError(f"no Chromium binary found (looked for $CHROMIUM and {', '.join(CHROMIUM_NAMES)})")
        self.timeout, self.size = timeout, (width, height)
        self._id = 0
        self._events: list[dict] = []

    def __enter__(self) -> Browser:
        self._profile = tempfile.mkdtemp(prefix="convscope-chromium-")
        self._log = open(Path(self._profile).with_suffix(".log"), "wb")  # noqa: SIM115 (closed in __exit__)
        self._proc = None
        w, h = self.size
        try:
            self._proc = subprocess.Popen(
                [self.chromium, *FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-port=0",
                 f"--window-size={w},{h}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            )
            port = self._port()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=self.timeout) as r:
                targets = json.load(r)
            page = next(t for t in targets if t.get("type") == "page")
            self.ws = WebSocket(page["webSocketDebuggerUrl"], self.timeout)
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(f"{domain}.enable")
            self.call("Emulation.setDeviceMetricsOverride", width=w, height=h, deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                self.call("Browser.close")
            except (OSError, ConnectionError, TimeoutError):
                pass
            ws.close()
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()  # only the process this object started
                self._proc.wait()
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)
        Path(self._profile).with_suffix(".log").unlink(missing_ok=True)

    def _port(self) -> int:
        active = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                log = Path(self._profile).with_suffix(".log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Chromium exited with status {self._proc.returncode}:\n{log}")
            lines = active.read_text().split("\n") if active.exists() else []
            if len(lines) >= 2 and lines[0].strip().isdigit():
                return int(lines[0])
            time.sleep(0.05)
        raise TimeoutError(f"Chromium did not write {active} within {self.timeout} s")

    def call(self, method: str, **params: Any) -> dict:
        """Send one CDP command and return its result; events that arrive meanwhile are kept."""
        self._id += 1
        my_id = self._id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"CDP {method} failed: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self._events.append(msg)
        raise TimeoutError(f"no answer to CDP {method} within {self.timeout} s")

    def _wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, e in enumerate(self._events):
                if e["method"] == method:
                    return self._events.pop(i)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {self.timeout} s")
            self._events.append(json.loads(self.ws.recv()))

    def open(self, path: Path) -> list[str]:
        """Navigate to a local file and wait until it has loaded; returns navigation problems."""
        self._events.clear()
        nav = self.call("Page.navigate", url=Path(path).resolve().as_uri())
        if nav.get("errorText"):
            return [f"navigation failed: {nav['errorText']}"]
        self._wait_event("Page.loadEventFired")
        return []

    def check(self, path: Path) -> list[str]:
        """Open `path` and list what went wrong: console errors, exceptions, failed loads, broken images."""
        problems = self.open(path)
        if problems:
            return problems
        broken = self.call("Runtime.evaluate", expression=_BROKEN_IMAGES_JS, returnByValue=True)
        problems += [f"image did not load: {src}" for src in broken["result"].get("value", [])]
        ready = self.call("Runtime.evaluate", expression="document.readyState", returnByValue=True)
        if ready["result"].get("value") != "complete":
            problems.append(f"document.readyState is {ready['result'].get('value')!r}")
        for e in self._events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
                problems.append(f"console.{p['type']}: {text}")
            elif e["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                problems.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                entry = p["entry"]
                problems.append(f"log error: {entry.get('text')} {entry.get('url', '')}".rstrip())
            elif e["method"] == "Network.requestWillBeSent":
                url = p.get("request", {}).get("url", "")
                if not url.startswith(("file:", "data:", "about:")):
                    problems.append(f"network request leaves the page's folder: {url}")
        return problems

    def screenshot(self, path: Path, out: Path, full_page: bool = True) -> Path:
        """Open `path` and save a PNG of it (the whole page when `full_page`) to `out`."""
        self.open(path)
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": self.size[0], "height": size["height"], "scale": 1})
        data = self.call("Page.captureScreenshot", **params)["data"]
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(data))
        return out


def check_pages(paths: Iterable[str | Path], chromium: str | None = None) -> list[str]:
    """Open every page in one headless Chromium; returns 'page: problem' lines (empty when all is well)."""
    problems = []
    with Browser(chromium) as b:
        for p in paths:
            problems += [f"{Path(p).name}: {msg}" for msg in b.check(Path(p))]
    return problems
