"""The one cache folder: the environment names it, read on every call."""

from pathlib import Path

from superpos_core.paths import cache_dir


def test_the_cache_folder_follows_the_environment_on_each_call(tmp_path, monkeypatch):
    monkeypatch.delenv("SUPERPOS_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "superpos"
    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere" and isinstance(cache_dir(), Path)  # moved without a reload


def test_a_value_kept_on_disk_is_computed_once_and_again_when_an_input_changes(tmp_path, monkeypatch):
    from superpos_core import paths

    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(tmp_path / "cache"))
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"first weights")
    made = []

    def make():
        made.append(weights.read_bytes())
        return {"size": len(weights.read_bytes()), "note": "measured"}

    assert paths.kept_on_disk("numbers", [weights], make) == {"size": 13, "note": "measured"}
    assert paths.kept_on_disk("numbers", [weights], make) == {"size": 13, "note": "measured"} and len(made) == 1
    weights.write_bytes(b"retrained weights")  # the numbers were measured on other weights: never read again
    assert paths.kept_on_disk("numbers", [weights], make)["size"] == 17 and len(made) == 2
    (kept,) = [path for path in (tmp_path / "cache" / "computed").iterdir() if path.read_text().find("17") >= 0]
    kept.write_text('{"size": 1')  # damaged (a full disk, say): computed again, and written whole
    assert paths.kept_on_disk("numbers", [weights], make)["size"] == 17 and len(made) == 3
    assert paths.kept_on_disk("numbers", [weights], make)["size"] == 17 and len(made) == 3


def test_a_value_is_still_given_when_the_cache_folder_cannot_be_written(tmp_path, monkeypatch):
    from superpos_core import paths

    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(blocked))
    assert paths.kept_on_disk("numbers", [], lambda: [1, 2]) == [1, 2]
    assert paths.kept_on_disk("numbers", [], lambda: [3]) == [3]  # nothing was kept: computed each time
