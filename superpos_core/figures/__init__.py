"""Figures, by subject: one function per static picture, one class per live panel.

Import the module of the subject you need; nothing is re-exported here, so a name says where it lives::

    from superpos_core.figures import mnist as mnist_figures

    mnist_figures.spectrum(trained, baseline, 0.99)

- ``base``: figure builders (``new_figure``, ``fixed_figure``, ``place``), ``to_rgb``, ``tile_grid``, the
  colour map and resolution every figure shares, and ``drawable`` (labels the font can draw).
- ``live``: panels redrawn on every request (``LivePanel``: ``update(...)`` returns pixels), the pools
  that lend them, and the text stamped on them with Pillow.
- ``mnist``: the MNIST tab's weights, spectra, training curves and its four live panels
  (activations, saliency, polysemanticity, histograms).
- ``toy``: the toy model of superposition (WᵀW, feature norms, dimensionality, arrows, sparsity sweep).
- ``resnet``: a ResNet layer's feature maps, heat overlay and rank per layer.
- ``lm``: a language model's token heatmap and rank by layer.
- ``sae``: a sparse autoencoder's features (course SAE and pretrained SAEs).
- ``concepts``: concepts against labelled sentences (correlation bars, PCA scatter).

Static figures return a ``matplotlib.figure.Figure`` (``base.to_rgb`` turns it into pixels); live
panels return (H, W, 3) uint8 pixels. No pyplot anywhere: pyplot keeps global state that two users
of a server would share.
"""

import matplotlib

# A server has no screen; this must precede any backend use, so it is set before any figure module loads.
matplotlib.use("Agg")
# Imported now, on the importing thread, though no figure uses it: seaborn imports pyplot on its first
# figure, often on a background thread, and gradio wraps every request in ``matplotlib.use``, which calls
# into pyplot if it is in ``sys.modules``: a request that met it half-imported failed ("partially
# initialized module 'matplotlib.pyplot'"). About 0.4 s of start-up.
import matplotlib.pyplot  # noqa: E402, F401
