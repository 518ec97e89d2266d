"""The small shared cache behind the app's kept models, texts and tables."""
import threading

import pytest

from superpos_core.recent import Recent


def test_keeps_the_most_recently_used_values():
    cache = Recent(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent, so "b" goes first
    cache.put("c", 3)
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3 and len(cache) == 2
    assert cache.get("b") is None


def test_the_first_value_stored_for_a_key_is_kept():
    cache = Recent(2)
    assert cache.put("a", 1) == 1
    assert cache.put("a", 2) == 1 and cache.get("a") == 1


def test_get_or_make_builds_only_what_is_missing():
    cache, made = Recent(4), []

    def make(value):
        made.append(value)
        return value

    assert cache.get_or_make("a", lambda: make(1)) == 1
    assert cache.get_or_make("a", lambda: make(2)) == 1
    assert made == [1]


def test_threads_that_miss_together_all_get_the_kept_value():
    cache, start = Recent(1), threading.Barrier(8)
    results = []

    def ask(value):
        start.wait()
        results.append(cache.get_or_make("key", lambda: [value]))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and all(r is results[0] for r in results) and cache.get("key") is results[0]


def test_a_cache_needs_room():
    with pytest.raises(ValueError, match="at least one"):
        Recent(0)
