"""Download pretrained SAEs once, for offline use, and check that they load.

python -m superpos_core.sae --layers 8        # GPT-2 small's layer-8 SAE (about 150 MB)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from superpos_core.sae import pretrained
from superpos_core.sae.checks import SAELoadError
from superpos_core.sae.releases import GPT2_SMALL_RES_JB, PRETRAINED_RELEASES


def main(argv: Sequence[str] | None = None) -> int:
    """Download SAEs into the Hugging Face cache and check that they load."""
    parser = argparse.ArgumentParser(prog="python -m superpos_core.sae", description=main.__doc__)
    parser.add_argument(
        "--release", default=GPT2_SMALL_RES_JB.name, choices=sorted(PRETRAINED_RELEASES), help="catalogued release"
    )
    parser.add_argument("--layers", type=int, nargs="*", default=[], help="layers of the release to fetch")
    parser.add_argument("--repo", help="any hub repository in SAELens' format (with --subfolder), instead of a release")
    parser.add_argument("--subfolder", help="the SAE's folder in --repo")
    args = parser.parse_args(argv)
    if bool(args.repo) != bool(args.subfolder):
        parser.error("--repo and --subfolder go together")
    release = PRETRAINED_RELEASES[args.release]
    wanted = (
        [(args.repo, args.subfolder)]
        if args.repo
        else [(release.repo_id, release.subfolder(layer)) for layer in args.layers]
    )
    if not wanted:
        parser.error("name --layers (e.g. --layers 8) or --repo and --subfolder")
    for repo_id, subfolder in wanted:
        try:
            sae = pretrained.fetch_pretrained_sae(repo_id, subfolder)
        except SAELoadError as error:
            print(error, file=sys.stderr)
            return 1
        print(f"{repo_id}/{subfolder}: {sae.hook_name}, d_in {sae.d_in}, d_sae {sae.d_sae:,}")
    return 0
