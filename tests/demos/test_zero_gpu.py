"""ZeroGPU: on such a Space the handlers that use the device go through ``spaces.GPU``; anywhere else nothing changes.

ZeroGPU hardware cannot be reached from here. The wiring is checked with a stand-in ``spaces`` module that records
what it is given, and the real ``spaces`` package (installed by the test requirements) is checked to leave a
handler as it is without that hardware, as ``demos.common.on_gpu`` does without even importing it.
"""

from __future__ import annotations

import functools
import sys
import types

import pytest

from demos import common
from tests import contracts

# The endpoints whose handlers run models on the device, and the seconds each asks the GPU for.
ON_THE_DEVICE = {
    "lm": 60,
    "lm_sae": 120,
    "lm_concepts": 60,
    "lm_features": 60,
    "lm_feature": 60,
    "lm_steer": 60,
    "mnist": 60,
    "mnist_train": 120,
    "resnet": 60,
    "toy": 60,
    "toy_sweep": 120,
    "toy_sae": 120,
    "toy_sae_sweep": 120,
}


def handler(x):
    return x


@pytest.fixture
def stand_in_spaces(monkeypatch):
    """A ``spaces`` module whose GPU decorator marks the function it wraps and remembers the duration asked for."""
    given = []

    def gpu(fn, duration=None):
        @functools.wraps(fn)  # as spaces.GPU wraps it: gradio reads the handler's signature and hints through it
        def on_a_gpu(*args, **kwargs):
            return fn(*args, **kwargs)

        on_a_gpu.zerogpu_duration = duration
        given.append((fn, duration))
        return on_a_gpu

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    return given


def test_off_zero_gpu_a_handler_is_left_as_it_is(monkeypatch, stand_in_spaces):
    monkeypatch.delenv(common.ZERO_GPU, raising=False)
    assert common.on_gpu(handler) is handler and common.on_gpu(duration=5)(handler) is handler
    monkeypatch.setenv(common.ZERO_GPU, "false")
    assert common.on_gpu(handler) is handler
    assert stand_in_spaces == []  # spaces was never asked


def test_the_real_spaces_package_without_the_hardware_changes_nothing(monkeypatch):
    monkeypatch.delenv(common.ZERO_GPU, raising=False)
    import spaces

    assert spaces.GPU(handler) is handler and spaces.GPU(duration=30)(handler) is handler


def test_on_zero_gpu_every_handler_that_uses_the_device_asks_for_a_gpu(monkeypatch, stand_in_spaces):
    monkeypatch.setenv(common.ZERO_GPU, "true")
    wrapped = common.on_gpu(handler, duration=7)
    assert wrapped is not handler and wrapped(3) == 3 and stand_in_spaces == [(handler, 7)]
    import app

    blocks = app.build_app("cpu")
    by_name = {f.api_name: f.fn for f in blocks.fns.values() if f.api_name}
    asked = {name: getattr(by_name[name], "zerogpu_duration", None) for name in ON_THE_DEVICE}
    assert asked == ON_THE_DEVICE
    # the API still names each endpoint's inputs as before: gradio reads them through the wrapper
    api = blocks.get_api_info()["named_endpoints"]
    for endpoint, expected in contracts.ENDPOINTS.items():
        assert [p["parameter_name"] for p in api[endpoint]["parameters"]] == list(expected.inputs), endpoint
