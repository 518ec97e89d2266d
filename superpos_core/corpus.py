"""A corpus of real, redistributable text for training an SAE on the offline language model, built from Debian packages.

    apt-get install bible-kjv python3.11-doc libpython3.11-stdlib manpages man-db
    python -m superpos_core.corpus --out corpus/           # documents.jsonl + manifest.json

Four kinds of text, so that an SAE sees more than one register:

- **prose and dialogue**: the King James Bible (``bible-kjv``'s program prints it; public domain), one
  document per chapter, each verse a line without its number (the numbers are a reference system, not text);
- **reference prose**: the Python 3.11 documentation's reStructuredText sources (PSF License);
- **code**: the Python 3.11 standard library's own modules (PSF License), without its tests;
- **reference text**: the Linux man-pages project's pages, sections 2, 4, 5 and 7, rendered as a terminal shows
  them (free licences per page: GPL-2+, "verbatim", BSD, MIT; all allow redistribution).

Each source has a character budget (``Source.budget``): its documents are shuffled with the seed and taken
until the budget is spent, so no single source dominates. About 5% of each source's characters are held out
for evaluation, as whole documents taken in the order of a hash of their names. The manifest
records each source's package, version, licence, documents and characters per split; token counts are added
by whoever tokenises the corpus (the SAE's builder), since they depend on the model.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HELD_OUT = 0.05  # the share of each source's characters held out for evaluation
SEED = 0


@dataclass(frozen=True)
class Document:
    source: str  # the Source's name
    name: str  # where it came from within the source: a chapter, a file
    text: str

    @property
    def rank(self) -> bytes:
        """A fixed place for it in a shuffled order: a hash of its source and name."""
        return hashlib.sha256(f"{self.source}/{self.name}".encode()).digest()


def held_out(documents: list[Document], share: float = HELD_OUT) -> set[str]:
    """The names of the documents held out: taken in the order of their hashes until ``share`` of the characters.

    By hash, so that which documents are held out depends on the documents alone, not on the order they were read in.
    """
    total, kept, names = sum(len(d.text) for d in documents), 0, set()
    for document in sorted(documents, key=lambda d: d.rank):
        if kept >= share * total:
            break
        names.add(document.name)
        kept += len(document.text)
    return names


@dataclass(frozen=True)
class Source:
    """One package's text: how to read it, what it is, and whether its licence lets a dashboard show it."""

    name: str
    package: str  # the Debian package that holds it
    kind: str  # what register of text it is
    licence: str
    budget: int  # characters taken at most (about 4 characters a token for English)
    read: Callable[[], Iterator[Document]]
    shown_in_dashboards: bool = True  # every source here allows redistribution


# --- readers -----------------------------------------------------------------------------------------

_CHAPTER = re.compile(r"^(\S.*\S) (\d+)$")  # "Genesis 1", "1 Samuel 3", "Song of Solomon 2"
_VERSE = re.compile(r"^\s+(\d+) (.*)$")  # "  1 In the beginning ..."


def bible_chapters(printed: str) -> Iterator[Document]:
    """The chapters of ``bible``'s output: a heading line per chapter, then verses, each "  N text" and wrapped.

    Each verse becomes one line of running text, its number dropped.
    """
    book_chapter, verses = None, []

    def finished() -> Iterator[Document]:
        if book_chapter and verses:
            yield Document("kjv-bible", book_chapter, f"{book_chapter}\n\n" + "\n".join(verses) + "\n")

    for line in printed.splitlines():
        if not line.strip():
            continue
        heading, verse = _CHAPTER.match(line), _VERSE.match(line)
        if verse:
            verses.append(verse.group(2).strip())
        elif heading and not line.startswith(" "):
            yield from finished()
            book_chapter, verses = line.strip(), []
        elif verses:  # a wrapped verse's next line
            verses[-1] += " " + line.strip()
    yield from finished()


def read_bible(program: str = "bible") -> Iterator[Document]:
    printed = subprocess.run([program, "gen1:1-rev22:21"], capture_output=True, text=True, check=True).stdout
    yield from bible_chapters(printed)


def read_files(
    source: str, root: Path, pattern: str, skip: Callable[[Path], bool] = lambda path: False
) -> Iterator[Document]:
    """Every file under ``root`` matching ``pattern`` (sorted, so the order never depends on the file system)."""
    for path in sorted(root.rglob(pattern)):
        if path.is_file() and not skip(path.relative_to(root)):
            text = path.read_text(encoding="utf-8", errors="replace")
            if text.strip():
                yield Document(source, str(path.relative_to(root)), text)


def is_test_or_vendored(relative: Path) -> bool:
    """The standard library's tests, demos and bundled third-party code: not what a reader of the library sees."""
    return bool({"test", "tests", "idle_test", "__pycache__", "site-packages", "lib2to3"} & set(relative.parts))


MAN_SECTIONS = ("man2", "man4", "man5", "man7")


def render_man_page(path: Path) -> str:
    """A man page as a terminal shows it, 80 columns, without bold or underline (``man -l``)."""
    environment = {**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "", "LC_ALL": "C.UTF-8"}
    rendered = subprocess.run(
        ["man", "--no-hyphenation", "--no-justification", "-E", "UTF-8", "-P", "cat", "-l", str(path)],
        capture_output=True,
        text=True,
        env=environment,
    )
    return re.sub(r".\x08", "", rendered.stdout)  # overstrikes, if any pager left them


def read_man_pages(root: Path = Path("/usr/share/man"), render: Callable[[Path], str] = render_man_page):
    for section in MAN_SECTIONS:
        for path in sorted((root / section).glob("*")):
            # A page that only includes another (".so man2/other.2") has no text of its own.
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
                if handle.read(4) == ".so ":
                    continue
            text = render(path)
            if text.strip():
                yield Document("linux-man-pages", f"{section}/{path.name}", text)


PYTHON_DOC = Path("/usr/share/doc/python3.11/html/_sources")
PYTHON_LIB = Path("/usr/lib/python3.11")

SOURCES = (
    Source(
        "kjv-bible",
        "bible-kjv-text",
        "prose and dialogue (narrative, poetry, law, letters)",
        "public domain: the King James Version of 1611 (its copyright expired; the package's copyright file)",
        4_400_000,
        read_bible,
    ),
    Source(
        "python-docs",
        "python3.11-doc",
        "reference prose and tutorials, with code examples",
        "PSF License Version 2 (the Python documentation)",
        3_000_000,
        lambda: read_files("python-docs", PYTHON_DOC, "*.rst.txt"),
    ),
    Source(
        "python-stdlib",
        "libpython3.11-stdlib",
        "code (Python modules, with their docstrings and comments)",
        "PSF License Version 2",
        2_400_000,
        lambda: read_files("python-stdlib", PYTHON_LIB, "*.py", is_test_or_vendored),
    ),
    Source(
        "linux-man-pages",
        "manpages",
        "reference text (system calls, devices, file formats, overviews)",
        "free licences per page (GPL-2+, 'verbatim', BSD, MIT; /usr/share/doc/manpages/copyright): all allow redistribution",
        2_000_000,
        read_man_pages,
    ),
)


# --- selection and the build ---------------------------------------------------------------------------


def within_budget(documents: list[Document], budget: int, seed: int = SEED) -> list[Document]:
    """The documents, shuffled with ``seed``, taken while their characters fit in ``budget`` (at least one)."""
    order = list(documents)
    random.Random(seed).shuffle(order)
    taken, used = [], 0
    for document in order:
        if taken and used + len(document.text) > budget:
            continue  # a smaller one later may still fit
        taken.append(document)
        used += len(document.text)
    return taken


def package_version(package: str) -> str | None:
    """The installed version of a Debian package, or None where dpkg does not know it."""
    try:
        found = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    except FileNotFoundError:
        return None
    return found.stdout.strip() or None


def build(out: Path, sources: tuple[Source, ...] = SOURCES, seed: int = SEED) -> dict:
    """Read every source, keep each within its budget, write ``documents.jsonl`` and ``manifest.json`` to ``out``.

    Returns the manifest.
    """
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "seed": seed,
        "held_out": f"about {HELD_OUT:.0%} of each source's characters: whole documents, in the order of a hash of their names",
        "sources": [],
    }
    with open(out / "documents.jsonl", "w", encoding="utf-8") as handle:
        for source in sources:
            documents = within_budget(list(source.read()), source.budget, seed)
            evaluation = held_out(documents)
            counts = {split: {"documents": 0, "characters": 0} for split in ("train", "eval")}
            for document in documents:
                split = "eval" if document.name in evaluation else "train"
                row = {"source": source.name, "name": document.name, "split": split, "text": document.text}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                counts[split]["documents"] += 1
                counts[split]["characters"] += len(document.text)
            manifest["sources"].append(
                {
                    "name": source.name,
                    "package": source.package,
                    "version": package_version(source.package),
                    "kind": source.kind,
                    "licence": source.licence,
                    "shown_in_dashboards": source.shown_in_dashboards,
                    "budget_characters": source.budget,
                    **counts,
                }
            )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def documents(folder: Path, split: str | None = None) -> Iterator[dict]:
    """The documents of a built corpus (``build``'s ``documents.jsonl``), of one split or all."""
    with open(Path(folder) / "documents.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if split is None or row["split"] == split:
                yield row


def count_tokens(folder: Path, tokenizer, name: str) -> dict:
    """Add each source's token count per split, as ``tokenizer`` cuts it, to a built corpus's manifest.

    Args:
        folder: a corpus written by ``build``.
        tokenizer: a Hugging Face tokenizer (the model's whose SAE is trained on the corpus).
        name: what to call that model in the manifest.
    """
    path = Path(folder) / "manifest.json"
    manifest = json.loads(path.read_text())
    counts: dict[tuple[str, str], int] = {}
    for row in documents(folder):
        key = (row["source"], row["split"])
        counts[key] = counts.get(key, 0) + len(tokenizer(row["text"], add_special_tokens=False)["input_ids"])
    for source in manifest["sources"]:
        for split in ("train", "eval"):
            source[split].setdefault("tokens", {})[name] = counts.get((source["name"], split), 0)
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


SLICE_CHARACTERS = 40_000  # per source, in the bundled slice: about 10,000 tokens each


def write_slice(folder: Path, out: Path, characters: int = SLICE_CHARACTERS) -> dict:
    """A small slice of a built corpus's held-out split, to ship with the app: the first ``characters`` of each
    source's held-out documents (whole documents, then the last one cut at a line end), gzipped JSON lines of
    {"source", "name", "text"}, the first line being {"manifest": the sources' package, version and licence}.

    What a model without an SAE trained here (GPT-2's pretrained SAEs) reads to build its features' dashboards.
    """
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    taken: dict[str, int] = {}
    rows = []
    for row in documents(folder, "eval"):
        left = characters - taken.get(row["source"], 0)
        if left <= 0:
            continue
        text = row["text"] if len(row["text"]) <= left else row["text"][: row["text"].rfind("\n", 0, left) + 1]
        if text.strip():
            rows.append({"source": row["source"], "name": row["name"], "text": text})
            taken[row["source"]] = taken.get(row["source"], 0) + len(text)
    about = {
        "from": "the held-out split of the corpus built by python -m superpos_core.corpus",
        "characters_per_source": taken,
        "sources": [
            {key: source[key] for key in ("name", "package", "version", "licence")} for source in manifest["sources"]
        ],
    }
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as handle:
        handle.write(json.dumps({"manifest": about}) + "\n")
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return about


def read_slice(path: Path) -> tuple[dict, list[dict]]:
    """(its manifest, its documents) of a slice written by ``write_slice``."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    return lines[0]["manifest"], lines[1:]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("corpus"), help="folder to write the corpus to")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of each source's selection")
    parser.add_argument(
        "--slice", type=Path, help="also write the held-out slice the app ships (corpus_slice.jsonl.gz)"
    )
    parser.add_argument(
        "--tokens-of",
        metavar="MODEL",
        default="smollm2-135m-offline",
        help="count tokens with this catalogue model's tokenizer ('' to skip)",
    )
    args = parser.parse_args(argv)
    manifest = build(args.out, seed=args.seed)
    if args.slice:
        print(f"slice: {write_slice(args.out, args.slice)['characters_per_source']}")
    if args.tokens_of:
        from superpos_core import lm  # loads the model: only when tokens are counted

        manifest = count_tokens(args.out, lm.load(args.tokens_of).tokenizer, args.tokens_of)
    for source in manifest["sources"]:
        tokens = {split: source[split].get("tokens", {}).get(args.tokens_of) for split in ("train", "eval")}
        print(
            f"{source['name']:<16} {source['package']} {source['version']}: "
            f"{source['train']['documents']} + {source['eval']['documents']} held-out documents, "
            f"{source['train']['characters'] + source['eval']['characters']:,} characters"
            + (f", {tokens['train']:,} + {tokens['eval']:,} held-out tokens" if args.tokens_of else "")
        )


if __name__ == "__main__":
    main()
