"""The reference rank table: in module order, cached on disk, recomputed when its format is old."""

import hashlib
import json

import pytest

from superpos_core import resnets


@pytest.mark.slow
def test_the_rank_table_is_in_module_order_like_the_layer_list(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(resnets.reference, "_reference_memo", type(resnets.reference._reference_memo)(8))
    loaded = resnets.load("mnist-resnet")
    names = resnets.layer_names("mnist-resnet")
    assert names.index("layer2.0.downsample.0") > names.index("layer2.0.conv2")  # defined after, though it runs first
    source, rows = resnets.reference_ranks(loaded)
    assert [row.layer for row in rows] == names == loaded.conv_layers
    # A table cached in the order the layers run (as before) is read back in module order.
    path = resnets.rank_cache_path(loaded, source)
    cached = json.loads(path.read_text())
    by_name = {row["layer"]: row for row in cached["rows"]}
    run_order = [
        name
        for block in ("layer2.0", "layer3.0")
        for name in (f"{block}.downsample.0", f"{block}.conv1", f"{block}.conv2")
    ]
    shuffled = [by_name[n] for n in names if n not in run_order] + [by_name[n] for n in run_order]
    path.write_text(json.dumps({"version": cached["version"], "rows": shuffled}))
    resnets.reference._reference_memo.clear()
    assert [row.layer for row in resnets.reference_ranks(loaded)[1]] == names


@pytest.mark.slow
def test_reference_ranks_are_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(tmp_path))
    loaded = resnets.load("mnist-resnet")
    source, first = resnets.reference_ranks(loaded)
    assert "MNIST" in source and len(first) == 20
    assert first[0].layer == "conv1" and not any(row.sample_bound for row in first)
    files = list((tmp_path / "ranks").glob("*.json"))
    assert len(files) == 1 and not list((tmp_path / "ranks").glob("*.tmp"))

    def must_not_run(*args, **kwargs):
        raise AssertionError("the table should come from the disk cache")

    monkeypatch.setattr(resnets.reference, "rank_table", must_not_run)
    assert resnets.reference_ranks(loaded)[1] == first  # in memory: no recomputation
    resnets.reference._reference_memo.clear()  # as after a restart
    assert resnets.reference_ranks(loaded)[1] == first  # from the disk cache, at once
    files[0].write_text("{ truncated")  # a corrupted cache file is recomputed, not trusted
    resnets.reference._reference_memo.clear()
    monkeypatch.undo()
    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(tmp_path))
    assert resnets.reference_ranks(loaded)[1] == first
    assert json.loads(files[0].read_text())["rows"][0]["layer"] == "conv1"  # and the file is whole again


@pytest.mark.slow
def test_a_cached_table_of_an_older_format_is_recomputed_not_misread(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERPOS_CACHE_DIR", str(tmp_path))
    loaded = resnets.load("mnist-resnet")
    source = resnets.reference_batches(loaded)[0]
    # Format 1 (before the centred count): a bare list of rows, named by model, weights and set only.
    stale = [
        {"layer": name, "channels": 16, "effective_rank": 1, "ratio": 0.0625, "columns": 10**6, "sample_bound": False}
        for name in resnets.layer_names("mnist-resnet")
    ]
    old_key = hashlib.sha256(f"mnist-resnet|{loaded.weights_id}|{source}".encode()).hexdigest()[:16]
    new_path = resnets.rank_cache_path(loaded, source)
    assert new_path.name != f"mnist-resnet-{old_key}.json"  # the format version is part of the name
    new_path.parent.mkdir(parents=True)
    for path in (new_path.parent / f"mnist-resnet-{old_key}.json", new_path):
        path.write_text(json.dumps(stale))
    table = resnets.reference_ranks(loaded)[1]
    assert all(row.effective_rank > 1 for row in table)  # the stale ranks were not read
    assert all(
        1 <= row.centred_effective_rank <= row.channels and row.rank_to_reach >= row.effective_rank for row in table
    )
    cached = json.loads(new_path.read_text())
    assert (
        cached["version"] == resnets.RANK_CACHE_VERSION == 2
        and cached["rows"][0]["centred_effective_rank"] == table[0].centred_effective_rank
    )
    new_path.write_text(
        json.dumps({"version": 1, "rows": cached["rows"]})
    )  # a format stamp that is not ours: recomputed too
    resnets.reference._reference_memo.clear()
    assert resnets.reference_ranks(loaded)[1] == table and json.loads(new_path.read_text())["version"] == 2
