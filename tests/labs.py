"""Running JupyterLab servers for the browser tests: one address type, a port picker,
a readiness poll and a clean stop, shared by every way a learner's server is started
(``python3 tasks.py course``, Binder's ``binder/start``).

A launcher is a context manager that yields a :class:`Lab` and stops its server (and the
server's kernels) on exit.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab server.

    url, token: where it answers (``http://127.0.0.1:PORT``) and its token.
    log: the server's stdout and stderr.
    release: the folder on disk holding the student notebooks it shows
        (``release/<chapter>/<chapter>.ipynb``); tests may add files there.
    release_path: that folder's path as the server sees it, relative to its root
        (``""`` when the server's root is the release folder itself).
    """

    url: str
    token: str
    log: Path
    release: Path
    release_path: str = ""

    def notebook_url(self, path: str, workspace: str) -> str:
        """The URL opening ``path`` (relative to the release folder) in its own workspace,
        so that no tab restores notebooks another tab opened."""
        full = f"{self.release_path.rstrip('/')}/{path}".lstrip("/")
        return f"{self.url}/lab/workspaces/{workspace}/tree/{full}?reset&token={self.token}"


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 only


def api(lab: Lab, path: str, method: str = "GET") -> object:
    """Call the server's REST API (``/api/...``); return the decoded JSON answer, if any."""
    request = urllib.request.Request(
        f"{lab.url}{path}", method=method, headers={"Authorization": f"token {lab.token}"}
    )
    with _NO_PROXY.open(request, timeout=30) as answer:
        body = answer.read()
    return json.loads(body) if body else None


def shut_down_kernels(lab: Lab) -> None:
    """End every session and kernel, so the next notebook starts on idle cores."""
    for session in api(lab, "/api/sessions"):
        api(lab, f"/api/sessions/{session['id']}", method="DELETE")
    for kernel in api(lab, "/api/kernels"):
        api(lab, f"/api/kernels/{kernel['id']}", method="DELETE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(server: subprocess.Popen, lab: Lab, timeout: float = 60) -> None:
    """Poll the server's REST API until it answers; fail early if the server exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(
                f"JupyterLab exited with {server.returncode}:\n{lab.log.read_text()[-3000:]}"
            )
        try:
            with _NO_PROXY.open(f"{lab.url}/api/status?token={lab.token}", timeout=2):
                return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"JupyterLab did not answer within {timeout} s:\n{lab.log.read_text()[-3000:]}")


def stop_server(server: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM (the server shuts its kernels down), then SIGKILL if it hangs."""
    server.terminate()
    try:
        server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
