"""python -m benchmarks.bench_steer [--runs 5] [--threads 1] [--quick]

Times steering the offline SmolLM2 with a feature of the SAE trained here (``superpos_core.lm.steering``), after
the model is loaded: one greedy run of 32 new tokens with the feature turned up (the hook at the SAE's layer on,
the KV cache used: ``steering.Continuation``), against the floor of transformers' own ``generate`` of 32 greedy tokens with no hook. ``steer`` itself
makes both runs, the baseline and the steered one, so its whole time is reported too. Goal: 32 greedy tokens <= 6 s.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks.measure import milliseconds, threads_and_load
from benchmarks.summary import quick_run, record, verdict
from superpos_core import lm
from superpos_core.lm import features, steering

MODEL = "smollm2-135m-offline"
PROMPT = "Yesterday I went to the market and"
FEATURE = 1189  # fires on "king" before a name
TOKENS = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (the app's setting: 1)")
    parser.add_argument("--quick", action="store_true", help="a check that it runs: 1 run of 4 tokens; no goal judged")
    args = parser.parse_args()
    tokens = TOKENS
    if args.quick:
        quick_run()
        args.runs, tokens = 1, 4
    torch.set_num_threads(args.threads)
    print(threads_and_load())
    loaded = lm.load(MODEL)
    found = features.feature_sae(MODEL)

    ids = steering.prompt_ids(loaded, PROMPT)
    added = 3.0 * steering.typical_activation(found, FEATURE) * steering.direction(found, FEATURE)

    def steered_only() -> None:  # one run: the prompt read with the hook on, then the new tokens, KV cache used
        run = steering.Continuation(loaded, ids, found.layer, added)
        while len(run.made) < tokens and not run.finished:
            run.step()

    steering.steer(found, loaded, PROMPT, FEATURE, 3.0, tokens=2)  # warm-up
    one = statistics.median(milliseconds(steered_only)[0] for _ in range(args.runs))
    both = statistics.median(
        milliseconds(steering.steer, found, loaded, PROMPT, FEATURE, 3.0, tokens=tokens)[0] for _ in range(args.runs)
    )
    ids = loaded.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        floor = statistics.median(
            milliseconds(loaded.model.generate, ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)[0]
            for _ in range(args.runs)
        )
    print(
        f"1) {tokens} greedy tokens, steered (hook on, KV cache): p50 {one / 1000:.2f} s; floor (transformers' "
        f"generate, no hook): {floor / 1000:.2f} s  goal <= 6 s: {verdict(one <= 6000)}"
    )
    print(
        f"2) steer() whole (baseline and steered, {tokens} tokens each, KL and token shifts): p50 {both / 1000:.2f} s"
    )
    record(
        "lm", f"steering: {tokens} greedy tokens", one / 1000, "s", floor=floor / 1000, goal="<= 6 s", met=one <= 6000
    )


if __name__ == "__main__":
    main()
