"""The science behind superpos: models, activation capture, ranks, figures.

Nothing in this package imports gradio: every function here works the same from a notebook.
"""
