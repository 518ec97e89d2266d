"""python -m benchmarks.bench_features [--runs 20] [--threads 1] [--quick]

Times the language-model tab's feature dashboards (``demos/lm_features.py``) with the offline SmolLM2 and the SAE
trained here for it (``assets/smollm2_sae_l15``), after the model is loaded, as a learner uses them:

1) A feature's dashboard: the whole handler ``demos.lm_features.feature_event`` (its contexts decoded and shaded,
   its bands, its histogram drawn, its logits), for features drawn at random among those that fire. Floor: reading
   the same feature's numbers (``features.feature_dashboard``), no pictures. Goal: p50 <= 300 ms.
2) ``/lm_features`` on 64 tokens of real text: the whole handler ``demos.lm_features.features_event`` with the tab's
   text cache emptied before every call, so that each call runs the model's forward pass. Floor: that forward pass
   alone (``lm.analyse_text``). Goal: p50 <= 1 s.
"""

from __future__ import annotations

import argparse
import random
import statistics

import numpy as np
import torch

from benchmarks.measure import milliseconds, threads_and_load
from benchmarks.summary import quick_run, record, verdict
from demos import lm_features, lm_reading
from superpos_core import lm
from superpos_core.lm import features

MODEL = "smollm2-135m-offline"
# Plain English (Genesis 1:1-4, King James Version; public domain), cut to its first 64 SmolLM2 tokens.
TEXT = (
    "In the beginning God created the heaven and the earth. And the earth was without form, and void; and darkness "
    "was upon the face of the deep. And the Spirit of God moved upon the face of the waters. And God said, Let there "
    "be light: and there was light. And God saw the light, that it was good: and God divided the light from the darkness."
)
TOKENS = 64
quiet = lambda *a, **k: None  # noqa: E731  stands in for gr.Progress


def median_ms(run, runs: int) -> float:
    return statistics.median(milliseconds(run)[0] for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (the app's setting: 1)")
    parser.add_argument("--quick", action="store_true", help="a check that it runs: 2 runs each; no goal judged")
    args = parser.parse_args()
    if args.quick:
        quick_run()
        args.runs = 2
    torch.set_num_threads(args.threads)
    print(threads_and_load())
    loaded = lm.load(MODEL)
    found = features.feature_sae(MODEL)
    text = loaded.tokenizer.decode(loaded.tokenizer(TEXT, add_special_tokens=False)["input_ids"][:TOKENS])
    tokens = len(loaded.tokenizer(text, add_special_tokens=False)["input_ids"])
    firing = np.flatnonzero(found.dashboards.arrays["density"] > 0)
    pick = random.Random(0)
    lm_features.feature_event(MODEL, None, int(firing[0]), progress=quiet)  # warm-up: fonts, first figure

    dashboard = median_ms(
        lambda: lm_features.feature_event(MODEL, None, int(pick.choice(firing)), progress=quiet), args.runs
    )
    numbers = median_ms(
        lambda: features.feature_dashboard(found, loaded.tokenizer, int(pick.choice(firing))), args.runs
    )
    print(
        f"1) a feature's dashboard (feature_event, random firing features of {found.d_sae:,}): p50 {dashboard:.1f} ms; "
        f"floor (its numbers only): {numbers:.1f} ms  goal <= 300 ms: {verdict(dashboard <= 300)}"
    )
    record("lm", "feature dashboard", dashboard, "ms", floor=numbers, goal="p50 <= 300 ms", met=dashboard <= 300)

    def fresh_features():
        lm_reading.forget_texts()  # every call runs the forward pass, as a new text does
        return lm_features.features_event(text, MODEL, None, progress=quiet)

    fresh_features()  # warm-up
    whole = median_ms(fresh_features, args.runs)
    forward = median_ms(lambda: lm.analyse_text(loaded, text, found.layer), args.runs)
    print(
        f"2) /lm_features on {tokens} tokens (features_event, text cache emptied): p50 {whole:.1f} ms; "
        f"floor (the forward pass, lm.analyse_text): {forward:.1f} ms  goal <= 1000 ms: {verdict(whole <= 1000)}"
    )
    record("lm", f"/lm_features, {tokens} tokens", whole, "ms", floor=forward, goal="p50 <= 1 s", met=whole <= 1000)


if __name__ == "__main__":
    main()
