"""The early reader: a second process that reads a restarted server's first texts while the server's own copy loads.

Each test runs in a fresh interpreter, as the server does: the reader is forked before any thread starts, and a
test process has many threads by now."""

import os
import subprocess
import sys
from pathlib import Path

from tests import helpers

REPO = Path(__file__).resolve().parents[3]

READS_AS_THE_SERVER_DOES = """
import sys, time
import torch
from superpos_core.lm import analysis, early_reader, loading, tokens

folder = sys.argv[1]
reader = early_reader.start(folder, threads=1, allow_any=True)  # forked before any thread starts
deadline = time.monotonic() + 120
while not reader.ready():
    assert reader.alive and time.monotonic() < deadline, "the reader ended before it was ready"
    time.sleep(0.05)
texts = ["It was the best of times.", "the cat sat"]
early = reader.analyse_texts(texts, 1)
torch.set_num_threads(1)
own = analysis.analyse_texts(loading.load(folder, allow_any=True), texts, 1)
for mine, theirs in zip(own, early, strict=True):
    assert (theirs.tokens, theirs.next_tokens, theirs.layer, theirs.notes) == (mine.tokens, mine.next_tokens, 1, mine.notes)
    assert torch.equal(theirs.hidden_states, mine.hidden_states), "the reader's activations differ from the server's"
    assert theirs.summary() == mine.summary()
try:
    reader.analyse_texts(["\\x00\\x01"], 0)
except tokens.TextInputError as error:
    print("refused:", error)
early_reader.retire(reader.name)
assert not reader.alive, "a retired reader is still running"
try:
    reader.analyse_texts(texts, 0)
except early_reader.ReaderGone:
    print("gone")
print("ok")
"""


def run_script(script: str, *args: str, env: dict | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_reader_reads_exactly_as_the_server_does_and_ends_when_retired(tmp_path):
    folder = helpers.save_tiny_gpt2(tmp_path / "tiny", words=["best", "times", "cat", "sat"])
    out = run_script(READS_AS_THE_SERVER_DOES, str(folder))
    assert "refused: " in out and "Traceback" not in out  # an empty text refused there as here, in words
    assert out.splitlines()[-2:] == ["gone", "ok"]


# The server's own load is held back (as a slow start would hold it), so the reader answers first; then it is let go.
ANSWERS_WHILE_THE_SERVER_LOADS = """
import threading
import torch
from superpos_core.lm import early_reader, loading

reader = early_reader.start_for_server(["--port", "7999"])  # as app.py calls it: the default model, GPT-2 here
assert reader is not None and reader.name == "gpt2", reader
assert early_reader.start_for_server(["--tab", "mnist"]) is None  # a tab without the model: no reader
assert early_reader.start_for_server(["--help"]) is None  # the app prints its flags and ends

let_go = threading.Event()
own_load = loading._load
loading._load = lambda *a, **k: (let_go.wait(120), own_load(*a, **k))[1]
from demos import lm_reading  # gradio and the tab, imported meanwhile as app.py imports them

cpu = torch.device("cpu")
text = "It was the best of times."
early = lm_reading.read_text(text, "gpt2", 2, cpu, lm_reading.quiet)
assert loading.loaded_now("gpt2") is None and reader.alive, "read by the server's own copy, not the reader"
let_go.set()
lm_reading.load_model("gpt2", cpu, lm_reading.quiet)
assert not reader.alive, "the reader still runs after the server's own copy is ready"
torch.set_num_threads(1)
own = lm_reading.read_text(text, "gpt2", 2, cpu, lm_reading.quiet)
assert own is not early and own.summary() == early.summary()
assert torch.equal(own.hidden_states, early.hidden_states)
print("ok")
"""


def test_a_server_reads_its_first_text_with_the_reader_while_its_own_copy_loads(tmp_path):
    hub = helpers.tiny_gpt2_in_hub_cache(tmp_path / "hub", words=["best", "times"])
    out = run_script(ANSWERS_WHILE_THE_SERVER_LOADS, env={"HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"})
    assert out.splitlines()[-1] == "ok"
