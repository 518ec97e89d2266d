"""The one cache folder: the environment names it, read on every call."""

from pathlib import Path

from superpos_core.paths import cache_dir


def test_the_cache_folder_follows_the_environment_on_each_call(tmp_path, monkeypatch):
    monkeypatch.delenv("SUPERPOS_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "superpos"
    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere" and isinstance(cache_dir(), Path)  # moved without a reload
