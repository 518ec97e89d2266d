"""python -m superpos: the same as the ``superpos`` command."""

from superpos import main

main()
