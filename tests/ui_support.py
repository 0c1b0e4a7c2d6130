"""Shared by the UI tests (``test_demo_runs``, ``test_ui_browser``): one ``petid demo`` run into a temporary storage
root per test session, the Dagster UI (``petid ui --sample``) on loopback for it, its GraphQL endpoint, and a
headless Chromium driven over the DevTools protocol. Every process has a bounded lifetime and is killed, with
its process group, on exit."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO_ANIMALS = 12  # a small world whose demo-preset training still completes (the sample needs >= 8 animals)
UI_START_TIMEOUT_S = 180.0

_demo: dict[str, Any] = {}


def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The storage root of one ``petid demo --animals 12`` run, made by the first test module that asks and reused
    by the others in the session (a failed demo is reported to each of them)."""
    if "home" not in _demo:
        from petid_app.cli import main

        home = tmp_path_factory.mktemp("petid_ui_home")
        started = time.monotonic()
        status = main(["demo", "--home", str(home), "--animals", str(DEMO_ANIMALS)])
        _demo.update(home=home, status=status, seconds=time.monotonic() - started)
    assert _demo["status"] == 0, f"petid demo failed with status {_demo['status']}"
    return _demo["home"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace_s``."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        if process.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait_s)
    with contextlib.suppress(ProcessLookupError):  # stragglers of a group whose leader already exited
        os.killpg(process.pid, signal.SIGKILL)


def graphql(url: str, query: str, variables: dict[str, Any] | None = None, timeout_s: float = 60.0) -> dict[str, Any]:
    """POST a GraphQL query to the UI's ``/graphql``; the ``data`` of the answer (errors fail the test)."""
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=timeout_s)
    response.raise_for_status()
    body = response.json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


LOCATIONS = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


@contextlib.contextmanager
def dagster_ui(home: Path, timeout_s: float = UI_START_TIMEOUT_S) -> Iterator[str]:
    """``petid ui --sample --home HOME`` (dagster dev: webserver, daemon and code server) on 127.0.0.1 and a free
    port, in its own process group; yields its base URL once the code location ``petid`` has loaded."""
    port = free_port()
    log_path = home / f"ui-{port}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "petid_app.cli", "ui", "--sample", "--home", str(home), "--port", str(port)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                assert process.poll() is None, f"petid ui exited ({process.returncode}):\n{log_path.read_text()}"
                assert time.monotonic() < deadline, f"the UI did not load in {timeout_s}s:\n{log_path.read_text()}"
                with contextlib.suppress(httpx.HTTPError):
                    entries = graphql(url, LOCATIONS, timeout_s=10)["workspaceOrError"].get("locationEntries", [])
                    entry = next((e for e in entries if e["name"] == "petid"), None)
                    if entry and entry["loadStatus"] == "LOADED":
                        error = entry["locationOrLoadError"]
                        assert error["__typename"] == "RepositoryLocation", error
                        break
                time.sleep(1.0)
            yield url
        finally:
            _stop(process)


def shared_ui(request: pytest.FixtureRequest, home: Path) -> str:
    """One ``petid ui --sample`` on the session's demo storage root, started by the first module that asks and
    stopped when the test session ends (``config.add_cleanup``)."""
    if "ui" not in _demo:
        stack = contextlib.ExitStack()
        request.config.add_cleanup(stack.close)
        _demo["ui"] = stack.enter_context(dagster_ui(home))
    return _demo["ui"]


def find_chromium() -> str | None:
    """Debian's ``chromium`` (or ``$PETID_CHROMIUM``, or another Chrome on PATH)."""
    candidates = [os.environ.get("PETID_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome",
                  "google-chrome-stable", "chrome"]
    return next((path for name in candidates if name and (path := shutil.which(name))), None)


class Page:
    """One browser tab over the Chrome DevTools Protocol (flat JSON messages on the page's websocket)."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self._ws = connect(ws_url, max_size=None, proxy=None, open_timeout=20)
        self._ids = itertools.count(1)

    def close(self) -> None:
        self._ws.close()

    def send(self, method: str, timeout_s: float = 60.0, **params: Any) -> dict[str, Any]:
        """Call ``method`` and return its result (events in between are dropped)."""
        message_id = next(self._ids)
        self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout_s
        while True:
            message = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == message_id:
                assert "error" not in message, (method, message["error"])
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def wait_for(self, expression: str, timeout_s: float = 60.0, poll_s: float = 0.5) -> Any:
        """Poll a JavaScript expression until it is truthy; its value (``None`` on timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(AssertionError):
                if value := self.evaluate(expression):
                    return value
            time.sleep(poll_s)
        return None

    def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        path.write_bytes(data)
        return data


@contextlib.contextmanager
def chromium_page(binary: str, width: int = 1400, height: int = 1000, timeout_s: float = 60.0) -> Iterator[Page]:
    """A headless Chromium (own profile, own process group) and one tab on it."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="petid-chromium-") as profile:
        process = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
             f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1", f"--remote-debugging-port={port}",
             "--remote-allow-origins=*", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
        page: Page | None = None
        try:
            deadline = time.monotonic() + timeout_s
            while page is None:
                assert process.poll() is None, f"chromium exited with status {process.returncode}"
                assert time.monotonic() < deadline, f"chromium's DevTools did not answer in {timeout_s}s"
                with contextlib.suppress(httpx.HTTPError, StopIteration):
                    targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
                    target = next(t for t in targets if t.get("type") == "page")
                    page = Page(target["webSocketDebuggerUrl"])
                    break
                time.sleep(0.3)
            page.send("Page.enable")
            page.send("Runtime.enable")
            page.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)
            yield page
        finally:
            if page is not None:
                with contextlib.suppress(Exception):
                    page.close()
            _stop(process, grace_s=5.0)
