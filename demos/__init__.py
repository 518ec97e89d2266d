"""One module per tab: layout and event wiring only; the science lives in superpos_core."""
