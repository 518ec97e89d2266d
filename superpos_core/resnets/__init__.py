"""The ResNets the app can explore: a catalogue (data), loading, and per-image analysis.

    from superpos_core import resnets
    model = resnets.load("mnist-resnet")
    result = resnets.analyse_image(model, "cat.jpg")     # every conv layer, one forward pass
    result.layers["layer1.0.conv1"].top_channels

One idea a module, each importing only those above it:

    catalogue.py        the models (data), their torchvision weights and layers, found without downloading
    loading.py          load once per process; a failed download remembered a while; what a status line says
    pictures.py         any picture -> the model's input (MNIST's recipe or torchvision's transforms)
    analysis.py         one picture through the model, every conv layer captured: ``analyse_image``
    reference.py        every conv layer's effective rank over a reference set, cached on disk

The names below are re-exported so that callers write ``resnets.load``, ``resnets.CATALOGUE``. A test that swaps
something patches the submodule that reads it (``resnets.loading._failed_downloads``,
``resnets.reference._reference_memo``); patching the name here would change nothing the package calls.
"""

from superpos_core.resnets.analysis import MAP_SIDE, TOP_CHANNELS, ImageAnalysis, LayerView, analyse_image
from superpos_core.resnets.catalogue import (
    CATALOGUE,
    DEFAULT,
    ResNetEntry,
    build,
    checkpoint_path,
    how_to_fetch,
    layer_names,
    preprocessing,
    weights_enum,
)
from superpos_core.resnets.loading import (
    REASON_CHARS,
    RETRY_AFTER_S,
    DownloadFailure,
    LoadedResNet,
    ModelUnavailable,
    forget,
    load,
    register,
    status,
)
from superpos_core.resnets.pictures import (
    MIN_SIDE,
    PHOTO_BORDER_SPREAD,
    PHOTO_CAUTION,
    PHOTO_COLOUR_SHARE,
    PHOTO_PAPER_SHARE,
    ImageError,
    Prepared,
    looks_like_photo,
    photo_rgb,
    prepare,
)
from superpos_core.resnets.reference import (
    RANK_CACHE_VERSION,
    rank_cache_path,
    reference_batches,
    reference_ranks,
)

__all__ = [
    "CATALOGUE",
    "DEFAULT",
    "MAP_SIDE",
    "MIN_SIDE",
    "PHOTO_BORDER_SPREAD",
    "PHOTO_CAUTION",
    "PHOTO_COLOUR_SHARE",
    "PHOTO_PAPER_SHARE",
    "RANK_CACHE_VERSION",
    "REASON_CHARS",
    "RETRY_AFTER_S",
    "TOP_CHANNELS",
    "DownloadFailure",
    "ImageAnalysis",
    "ImageError",
    "LayerView",
    "LoadedResNet",
    "ModelUnavailable",
    "Prepared",
    "ResNetEntry",
    "analyse_image",
    "build",
    "checkpoint_path",
    "forget",
    "how_to_fetch",
    "layer_names",
    "load",
    "looks_like_photo",
    "photo_rgb",
    "prepare",
    "preprocessing",
    "rank_cache_path",
    "reference_batches",
    "reference_ranks",
    "register",
    "status",
    "weights_enum",
]
