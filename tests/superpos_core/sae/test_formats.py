"""Reading SAELens' folder format, and the format registry."""

import json

import numpy as np
import pytest
import torch

from superpos_core import sae
from superpos_core.sae import formats
from tests.superpos_core.sae.helpers import D_IN, D_SAE, DROP, hand_encode, sae_tensors, write_sae_folder


def test_loads_saelens_folder_and_encodes_as_by_hand(tmp_path):
    tensors = sae_tensors()
    model = sae.load_pretrained_sae(write_sae_folder(tmp_path / "sae", tensors))
    assert (model.d_in, model.d_sae, model.hook_name, model.layer) == (D_IN, D_SAE, "blocks.8.hook_resid_pre", 8)
    assert model.apply_b_dec_to_input and model.model_name == "gpt2-small" and model.prepend_bos
    x = torch.randn(5, D_IN, generator=torch.Generator().manual_seed(1))
    features = model.encode(x)
    expected = hand_encode(x.double().numpy(), tensors, apply_b_dec=True)
    assert features.shape == (5, D_SAE)
    assert 0 < (expected > 0).mean() < 1  # the ReLU both passes and cuts
    np.testing.assert_allclose(features.numpy(), expected, rtol=1e-5, atol=1e-5)
    reconstruction = model.decode(features)
    assert reconstruction.shape == (5, D_IN)
    expected_x = expected @ tensors["W_dec"].double().numpy() + tensors["b_dec"].double().numpy()
    np.testing.assert_allclose(reconstruction.numpy(), expected_x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model(x), reconstruction)
    assert model.encode(x.reshape(1, 5, D_IN)).shape == (1, 5, D_SAE)  # any leading axes


def test_apply_b_dec_to_input_off_skips_the_centring(tmp_path):
    tensors = sae_tensors()
    on = sae.load_pretrained_sae(write_sae_folder(tmp_path / "on", tensors, apply_b_dec_to_input=True))
    off = sae.load_pretrained_sae(write_sae_folder(tmp_path / "off", tensors, apply_b_dec_to_input=False))
    x = torch.randn(4, D_IN, generator=torch.Generator().manual_seed(2))
    np.testing.assert_allclose(
        off.encode(x).numpy(), hand_encode(x.double().numpy(), tensors, apply_b_dec=False), rtol=1e-5, atol=1e-5
    )
    assert not torch.allclose(on.encode(x), off.encode(x))


def test_older_files_missing_settings_get_saelens_defaults(tmp_path):
    # Before SAELens 6: hook_point / hook_point_layer, and no apply_b_dec_to_input (meaning true).
    old = sae.load_pretrained_sae(
        write_sae_folder(
            tmp_path / "old",
            hook_name=DROP,
            hook_layer=DROP,
            apply_b_dec_to_input=DROP,
            normalize_activations=DROP,
            hook_point="blocks.3.hook_resid_pre",
            hook_point_layer=3,
        )
    )
    assert (old.hook_name, old.layer, old.apply_b_dec_to_input) == ("blocks.3.hook_resid_pre", 3, True)
    new = sae.load_pretrained_sae(
        write_sae_folder(tmp_path / "new", hook_layer=DROP, hook_name="blocks.11.hook_resid_post")
    )
    assert new.layer == 11  # from the hook name
    embed = sae.load_pretrained_sae(write_sae_folder(tmp_path / "embed", hook_layer=DROP, hook_name="hook_embed"))
    assert embed.layer is None
    legacy_bool = sae.load_pretrained_sae(write_sae_folder(tmp_path / "bool", normalize_activations=False))
    assert legacy_bool.d_sae == D_SAE


def test_half_precision_weights_load_as_float32(tmp_path):
    tensors = sae_tensors()
    half = {k: v.half() for k, v in tensors.items()}
    model = sae.load_pretrained_sae(write_sae_folder(tmp_path / "sae", half, dtype="float16"))
    assert model.W_enc.dtype == torch.float32
    torch.testing.assert_close(model.W_enc.data, half["W_enc"].float())


def test_a_scaling_factor_of_ones_is_harmless(tmp_path):
    tensors = {**sae_tensors(), "scaling_factor": torch.ones(D_SAE)}
    assert sae.load_pretrained_sae(write_sae_folder(tmp_path / "sae", tensors)).d_sae == D_SAE


def _broken_weights(name: str, tensors: dict) -> dict:
    tensors = dict(tensors)
    if name == "missing b_enc":
        del tensors["b_enc"]
    elif name == "W_dec wrong":
        tensors["W_dec"] = torch.zeros(D_SAE, D_IN + 1)
    elif name == "W_enc transposed":
        tensors["W_enc"] = tensors["W_enc"].t().contiguous()
    elif name == "scaling":
        tensors["scaling_factor"] = torch.full((D_SAE,), 2.0)
    return tensors


@pytest.mark.parametrize(
    "weights, cfg_changes, message",
    [
        ("missing b_enc", {}, r"lacks tensor\(s\) b_enc"),
        ("W_dec wrong", {}, r"W_dec has shape \(64, 17\), expected \(64, 16\)"),
        ("W_enc transposed", {}, "looks transposed"),
        ("scaling", {}, "scaling_factor"),
        (None, {"d_in": 32}, r"does not match d_in=32, d_sae=64"),
        (None, {"d_sae": DROP}, "d_sae is missing"),
        (None, {"d_in": "768"}, "d_in is '768'"),
        (None, {"hook_name": DROP}, "hook_name"),
        (None, {"hook_layer": 7}, "hook_layer 7 does not agree"),
        (
            None,
            {"normalize_activations": "expected_average_only_in"},
            "normalize_activations = 'expected_average_only_in' is not supported",
        ),
        (None, {"normalize_activations": True}, "normalize_activations = 'expected_average_only_in' is not supported"),
        (None, {"architecture": "jumprelu"}, "architecture 'jumprelu' is not supported"),
        (None, {"activation_fn": "topk"}, "activation function 'topk' is not supported"),
        (None, {"finetuning_scaling_factor": True}, "finetuning_scaling_factor"),
        (None, {"hook_head_index": 3}, "hook_head_index"),
        (None, {"apply_b_dec_to_input": "yes"}, "apply_b_dec_to_input"),
    ],
)
def test_each_broken_folder_raises_a_clear_load_error(tmp_path, weights, cfg_changes, message):
    folder = write_sae_folder(tmp_path / "sae", _broken_weights(weights, sae_tensors()), **cfg_changes)
    with pytest.raises(sae.SAELoadError, match=message) as error:
        sae.load_pretrained_sae(folder)
    assert str(folder) in str(error.value)  # says which SAE


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: None, "There is no folder"),
        (lambda f: (f / "cfg.json").unlink(), "has no cfg.json"),
        (lambda f: (f / "sae_weights.safetensors").unlink(), "has no sae_weights.safetensors"),
        (lambda f: (f / "cfg.json").write_text("{not json"), "not valid JSON"),
        (lambda f: (f / "cfg.json").write_text("[1, 2]"), "JSON object"),
        (lambda f: (f / "sae_weights.safetensors").write_bytes(b"\x00" * 64), "not a readable safetensors file"),
    ],
)
def test_missing_or_unreadable_files_raise_a_clear_load_error(tmp_path, damage, message):
    folder = tmp_path / "sae"
    if "no folder" not in message:
        write_sae_folder(folder)
    damage(folder)
    with pytest.raises(sae.SAELoadError, match=message):
        sae.load_pretrained_sae(folder)


def test_settings_of_how_the_training_text_was_read(tmp_path):
    centred = sae.load_pretrained_sae(
        write_sae_folder(
            tmp_path / "centred", context_size=64, model_from_pretrained_kwargs={"center_writing_weights": True}
        )
    )
    assert (centred.prepend_bos, centred.context_size, centred.center_writing_weights) == (True, 64, True)
    # SAELens loads the model with from_pretrained_no_processing(**kwargs): kwargs without the key mean uncentred.
    plain = sae.load_pretrained_sae(
        write_sae_folder(tmp_path / "plain", model_from_pretrained_kwargs={"fold_ln": False}, prepend_bos=False)
    )
    assert (plain.prepend_bos, plain.context_size, plain.center_writing_weights) == (False, 128, False)
    # A file silent on all three: SAELens' defaults (BOS yes, centring no), and no window size.
    silent = sae.load_pretrained_sae(write_sae_folder(tmp_path / "silent", prepend_bos=DROP, context_size=DROP))
    assert (silent.prepend_bos, silent.context_size, silent.center_writing_weights) == (True, None, False)


def test_the_catalogue_fills_in_what_cfg_json_leaves_out(tmp_path):
    # The release's files (keys as SAELens' tests show them) record context_size but not how GPT-2 was loaded.
    folder = write_sae_folder(
        tmp_path / "jb",
        hook_name=DROP,
        hook_layer=DROP,
        apply_b_dec_to_input=DROP,
        normalize_activations=DROP,
        prepend_bos=DROP,
        hook_point="blocks.8.hook_resid_pre",
        hook_point_layer=8,
        hook_point_head_index=None,
        dataset_path="Skylion007/openwebtext",
    )
    release = sae.GPT2_SMALL_RES_JB
    assert (release.prepend_bos, release.center_writing_weights, release.context_size) == (True, True, 128)
    model = sae.load_pretrained_sae(folder, release=release)
    assert (model.prepend_bos, model.context_size, model.center_writing_weights) == (True, 128, True)
    assert not sae.load_pretrained_sae(
        folder
    ).center_writing_weights  # without the catalogue nothing says it was centred


def test_saelens_6_files_keep_where_the_inputs_come_from_under_metadata(tmp_path):
    metadata = {
        "model_name": "gpt2-small",
        "hook_name": "blocks.3.hook_resid_pre",
        "hook_head_index": None,
        "context_size": 32,
        "prepend_bos": False,
        "model_from_pretrained_kwargs": {"center_writing_weights": True},
        "sae_lens_version": "6.5.1",
    }
    folder = write_sae_folder(
        tmp_path / "v6",
        hook_name=DROP,
        hook_layer=DROP,
        model_name=DROP,
        context_size=DROP,
        prepend_bos=DROP,
        metadata=metadata,
    )
    model = sae.load_pretrained_sae(folder)
    assert (model.hook_name, model.layer, model.model_name) == ("blocks.3.hook_resid_pre", 3, "gpt2-small")
    assert (model.prepend_bos, model.context_size, model.center_writing_weights) == (False, 32, True)


@pytest.mark.parametrize(
    "cfg_changes, message",
    [
        ({"context_size": 1}, "context_size must be a whole number of at least 2"),
        ({"context_size": 0, "prepend_bos": False}, "at least 1"),
        ({"context_size": "128"}, "context_size"),
        ({"prepend_bos": "yes"}, "prepend_bos must be true or false"),
        (
            {"model_from_pretrained_kwargs": ["center_writing_weights"]},
            "model_from_pretrained_kwargs must be an object",
        ),
        (
            {"model_from_pretrained_kwargs": {"center_writing_weights": 1}},
            "center_writing_weights must be true or false",
        ),
    ],
)
def test_unusable_reading_settings_raise_a_clear_load_error(tmp_path, cfg_changes, message):
    with pytest.raises(sae.SAELoadError, match=message):
        sae.load_pretrained_sae(write_sae_folder(tmp_path / "sae", **cfg_changes))


@pytest.mark.parametrize(
    "cfg_changes, setting",
    [
        ({"context_size": 64}, "context_size is 64"),
        ({"prepend_bos": False}, "prepend_bos is False"),
        ({"model_from_pretrained_kwargs": {}}, "center_writing_weights is False"),
    ],
)
def test_a_file_that_contradicts_its_catalogue_entry_is_refused(tmp_path, cfg_changes, setting):
    with pytest.raises(sae.SAELoadError, match=f"{setting}, but the catalogue entry gpt2-small-res-jb says"):
        sae.load_pretrained_sae(write_sae_folder(tmp_path / "sae", **cfg_changes), release=sae.GPT2_SMALL_RES_JB)


def test_a_new_format_is_one_reader_and_one_registry_line(tmp_path, monkeypatch):
    # A made-up format: the four tensors saved by torch.save, the settings in a JSON file of its own naming.
    def read_bundle(paths, source, release):
        cfg = json.loads(paths["settings.json"].read_text())
        tensors = {name: tensor.float() for name, tensor in torch.load(paths["weights.pt"]).items()}
        settings = formats.SAESettings(
            d_in=cfg["d_in"],
            d_sae=cfg["d_sae"],
            hook_name=cfg["hook"],
            layer=None,
            apply_b_dec_to_input=False,
            model_name=None,
            prepend_bos=False,
            context_size=None,
            center_writing_weights=False,
        )
        return formats.SAEFiles(tensors, settings, cfg)

    monkeypatch.setitem(formats.FORMATS, "bundle", formats.SAEFormat(("settings.json", "weights.pt"), read_bundle))
    tensors = sae_tensors()
    (tmp_path / "settings.json").write_text(
        json.dumps({"d_in": D_IN, "d_sae": D_SAE, "hook": "blocks.3.hook_resid_post"})
    )
    torch.save(tensors, tmp_path / "weights.pt")
    model = sae.load_pretrained_sae(tmp_path, format="bundle")
    assert model.hook_name == "blocks.3.hook_resid_post" and not model.prepend_bos
    x = torch.randn(5, D_IN, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        np.testing.assert_allclose(
            model.encode(x).numpy(), hand_encode(x.double().numpy(), tensors, apply_b_dec=False), rtol=1e-5, atol=1e-5
        )
    with pytest.raises(sae.SAELoadError, match="Unknown SAE format 'nope'.*saelens, bundle"):
        sae.load_pretrained_sae(tmp_path, format="nope")
