"""One picture through the model, every conv layer captured."""

import numpy as np

from superpos_core import resnets
from tests import helpers


def test_analysis_of_a_digit():
    loaded = resnets.load("mnist-resnet")
    sample = helpers.sample().test
    analysis = resnets.analyse_image(loaded, helpers.digit_on_paper(sample.images[0]))
    assert analysis.top5[0][0] == str(sample.labels[0])
    view = analysis.layers["layer3.0.conv1"]
    assert view.channels == 64 and view.size == (14, 14) or view.size == (7, 7)
    assert len(view.top_channels) == 16 and view.maps.shape == (16, resnets.MAP_SIDE, resnets.MAP_SIDE)
    means = [float(np.mean(view.maps[i])) for i in range(2)]
    assert view.top_channels[0] != view.top_channels[1] and means[0] >= 0
