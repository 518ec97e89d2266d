"""``python -m superpos_core.sae``: see ``cli.py``."""

from superpos_core.sae.cli import main

if __name__ == "__main__":  # not on import: the no-gradio guard imports every module of the package
    raise SystemExit(main())
