import gzip
import json

from superpos_core import corpus
from tests.helpers import build_tiny_corpus

# The shape ``bible "gen1:1-rev22:21"`` prints: a heading per chapter, verses numbered and wrapped at 80 columns.
PRINTED = """
Genesis 1

  1 In the beginning God created the heaven and the earth.
  2 And the earth was without form, and void; and darkness was upon the face of
the deep. And the Spirit of God moved upon the face of the waters.

Song of Solomon 2

  1 I am the rose of Sharon, and the lily of the valleys.
"""


def test_bible_chapters_become_running_text_without_verse_numbers():
    chapters = list(corpus.bible_chapters(PRINTED))
    assert [c.name for c in chapters] == ["Genesis 1", "Song of Solomon 2"]
    lines = chapters[0].text.splitlines()
    assert lines[0] == "Genesis 1" and lines[2].startswith("In the beginning")
    # the wrapped verse is one line again, its number gone
    assert lines[3] == (
        "And the earth was without form, and void; and darkness was upon the face of the deep. "
        "And the Spirit of God moved upon the face of the waters."
    )
    assert chapters[1].text.endswith("lily of the valleys.\n")


def test_about_five_percent_of_the_characters_are_held_out_whole_and_by_name():
    documents = [corpus.Document("s", f"doc{i}", "x" * (100 + 37 * i)) for i in range(200)]
    names = corpus.held_out(documents)
    share = sum(len(d.text) for d in documents if d.name in names) / sum(len(d.text) for d in documents)
    assert 0.05 <= share < 0.08
    assert corpus.held_out(list(reversed(documents))) == names  # the order read in does not matter


def test_the_budget_keeps_a_seeded_selection_that_fits():
    documents = [corpus.Document("s", f"doc{i}", "x" * (10 + i)) for i in range(50)]
    taken = corpus.within_budget(documents, 300, seed=1)
    assert sum(len(d.text) for d in taken) <= 300 and len(taken) >= 5
    assert taken == corpus.within_budget(documents, 300, seed=1)  # the same seed, the same documents
    assert taken != corpus.within_budget(documents, 300, seed=2)
    assert len(corpus.within_budget(documents[-1:], 5)) == 1  # one document is kept even over the budget


def test_files_are_read_in_order_and_tests_are_left_out(tmp_path):
    (tmp_path / "json").mkdir()
    (tmp_path / "test").mkdir()
    (tmp_path / "json" / "decoder.py").write_text("def decode(): ...\n")
    (tmp_path / "abc.py").write_text("class ABC: ...\n")
    (tmp_path / "test" / "test_abc.py").write_text("assert True\n")
    (tmp_path / "empty.py").write_text("\n")
    read = list(corpus.read_files("code", tmp_path, "*.py", corpus.is_test_or_vendored))
    assert [d.name for d in read] == ["abc.py", "json/decoder.py"]


def test_man_pages_that_only_include_another_are_skipped(tmp_path):
    section = tmp_path / "man2"
    section.mkdir()
    with gzip.open(section / "read.2.gz", "wt") as handle:
        handle.write(".TH READ 2\n.SH NAME\nread \\- read from a file descriptor\n")
    with gzip.open(section / "pread.2.gz", "wt") as handle:
        handle.write(".so man2/read.2\n")
    rendered = list(corpus.read_man_pages(tmp_path, render=lambda path: f"rendered {path.name}"))
    assert [(d.name, d.text) for d in rendered] == [("man2/read.2.gz", "rendered read.2.gz")]


def test_build_writes_documents_and_a_manifest_with_each_licence(tmp_path):
    sources = (
        corpus.Source(
            "tiny",
            "no-such-package",
            "prose",
            "public domain",
            100,
            lambda: iter(corpus.Document("tiny", f"d{i}", f"text {i}\n") for i in range(40)),
        ),
    )
    manifest = corpus.build(tmp_path, sources, seed=0)
    (entry,) = manifest["sources"]
    assert entry["licence"] == "public domain" and entry["package"] == "no-such-package" and entry["version"] is None
    rows = list(corpus.documents(tmp_path))
    assert entry["train"]["documents"] + entry["eval"]["documents"] == len(rows)
    assert sum(len(r["text"]) for r in rows) == entry["train"]["characters"] + entry["eval"]["characters"] <= 100
    assert {r["name"] for r in rows if r["split"] == "eval"} == corpus.held_out(
        [corpus.Document("tiny", r["name"], r["text"]) for r in rows]
    )
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    assert list(corpus.documents(tmp_path, "eval")) == [r for r in rows if r["split"] == "eval"]


def test_every_source_names_its_package_and_licence():
    for source in corpus.SOURCES:
        assert source.package and source.licence and source.kind and source.budget > 0
    assert {s.name for s in corpus.SOURCES} == {"kjv-bible", "python-docs", "python-stdlib", "linux-man-pages"}


def test_token_counts_are_added_per_source_and_split(tmp_path):
    sources = (
        corpus.Source(
            "a", "pkg", "prose", "public domain", 10_000, lambda: iter([corpus.Document("a", "one", "x y z")])
        ),
    )
    corpus.build(tmp_path, sources)
    words = lambda text, add_special_tokens: {"input_ids": text.split()}  # noqa: E731  one token per word
    manifest = corpus.count_tokens(tmp_path, words, "words")
    (entry,) = manifest["sources"]
    assert entry["eval"]["tokens"] == {"words": 3}  # the one document is held out (5% of it rounds up)
    assert entry["train"]["tokens"] == {"words": 0}
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest


def test_the_slice_takes_the_start_of_each_sources_held_out_text_with_its_licence(tmp_path):
    build_tiny_corpus(tmp_path / "corpus", documents=200, repeats=2)
    about = corpus.write_slice(tmp_path / "corpus", tmp_path / "slice.jsonl.gz", characters=500)
    manifest, rows = corpus.read_slice(tmp_path / "slice.jsonl.gz")
    assert manifest == about and manifest["sources"][0]["licence"] == "public domain"
    held = [r for r in corpus.documents(tmp_path / "corpus", "eval")]
    assert rows and all(r["source"] == "tiny" for r in rows)
    assert [r["name"] for r in rows] == [r["name"] for r in held[: len(rows)]]  # in the held-out split's order
    assert sum(len(r["text"]) for r in rows) == about["characters_per_source"]["tiny"] <= 500
    assert all(r["text"].endswith("\n") for r in rows)  # a cut document ends at a line's end


def test_the_shipped_slice_is_what_its_provenance_says():
    import hashlib
    from pathlib import Path

    assets = Path(__file__).resolve().parents[2] / "assets"
    provenance = json.loads((assets / "corpus_slice.provenance.json").read_text())
    path = assets / provenance["file"]
    assert provenance["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    manifest, rows = corpus.read_slice(path)
    assert provenance["metrics"] == {"documents": len(rows), "characters_per_source": manifest["characters_per_source"]}
    assert all(0 < n <= corpus.SLICE_CHARACTERS for n in manifest["characters_per_source"].values())
    assert {s["name"] for s in manifest["sources"]} == {s.name for s in corpus.SOURCES}
    assert "--slice" in provenance["reproduce"]
