import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError
from safetensors.torch import save_file

from superpos_core import lm, sae
from tests.helpers import TINY_D_MODEL, save_tiny_gpt2

# --- builders (made here, never downloaded) --------------------------------------------------------


def superposed_activations(
    tokens: int = 64, d_in: int = 32, n_true: int = 24, active: int = 2, seed: int = 0
) -> torch.Tensor:
    """Token activations built from ``active`` of ``n_true`` unit directions each: more directions
    than dimensions, every token sparse in them. The data an SAE is for."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.nn.functional.normalize(torch.randn(n_true, d_in, generator=generator), dim=1)  # (n_true, d_in)
    codes = torch.zeros(tokens, n_true)
    for t in range(tokens):
        chosen = torch.randperm(n_true, generator=generator)[:active]
        codes[t, chosen] = torch.rand(active, generator=generator) + 0.5
    return codes @ directions  # (tokens, d_in)


def course_loop(x: torch.Tensor, config: sae.CourseSAEConfig) -> tuple[sae.SparseAutoencoder, list[float]]:
    """The course's training loop, verbatim in spirit: autograd, torch.optim.Adam, StepLR."""
    model = sae.SparseAutoencoder(x.shape[1], config.n_features, seed=config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step_size, gamma=config.lr_gamma)
    losses = []
    for _ in range(config.epochs):
        optimizer.zero_grad()
        loss = model.loss(x, config.l1_weight)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return model, losses


D_IN, D_SAE = 16, 64
DROP = object()  # as a cfg value: leave that key out of cfg.json


def sae_tensors(d_in: int = D_IN, d_sae: int = D_SAE, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "W_enc": torch.randn(d_in, d_sae, generator=generator) / math.sqrt(d_in),
        "W_dec": torch.randn(d_sae, d_in, generator=generator) / math.sqrt(d_sae),
        "b_enc": torch.randn(d_sae, generator=generator) * 0.5,
        "b_dec": torch.randn(d_in, generator=generator),
    }


def write_sae_folder(folder: Path, tensors: dict[str, torch.Tensor] | None = None, **cfg_changes) -> Path:
    """A folder exactly as SAELens publishes one: cfg.json and sae_weights.safetensors."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "model_name": "gpt2-small",
        "d_in": D_IN,
        "d_sae": D_SAE,
        "hook_name": "blocks.8.hook_resid_pre",
        "hook_layer": 8,
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "dtype": "torch.float32",
        "context_size": 128,
        "prepend_bos": True,
    }
    for key, value in cfg_changes.items():
        if value is DROP:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    (folder / "cfg.json").write_text(json.dumps(cfg))
    save_file(sae_tensors() if tensors is None else tensors, str(folder / "sae_weights.safetensors"))
    return folder


def hand_encode(x: np.ndarray, t: dict[str, torch.Tensor], apply_b_dec: bool) -> np.ndarray:
    W_enc, b_enc, b_dec = (t[k].double().numpy() for k in ("W_enc", "b_enc", "b_dec"))
    centred = x - b_dec if apply_b_dec else x
    return np.maximum(centred @ W_enc + b_enc, 0.0)


# --- the course's SAE ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_training_lowers_the_reconstruction_error():
    x = superposed_activations()
    result = sae.train_course_sae(x)
    untrained = sae.SparseAutoencoder(x.shape[1], 16, seed=0)
    with torch.no_grad():
        before = float(torch.nn.functional.mse_loss(untrained(x)[0], x))
    assert result.mse_before == pytest.approx(before, rel=1e-5)
    assert result.final_mse < 0.5 * before, (before, result.final_mse)
    assert result.loss_history[-1] < result.loss_history[0]


def test_a_larger_l1_weight_gives_fewer_active_features():
    x = superposed_activations()
    l0 = [sae.train_course_sae(x, sae.CourseSAEConfig(l1_weight=w)).l0 for w in (0.0, 0.1, 0.3)]
    assert l0[0] > l0[1] > l0[2], l0


def test_same_seed_same_result_and_the_global_rng_is_left_alone():
    x = superposed_activations(tokens=20)
    config = sae.CourseSAEConfig(epochs=50, seed=4)
    rng_before = torch.random.get_rng_state()
    first, second = sae.train_course_sae(x, config), sae.train_course_sae(x, config)
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    np.testing.assert_array_equal(first.encoder_rows, second.encoder_rows)
    np.testing.assert_array_equal(first.feature_acts, second.feature_acts)
    np.testing.assert_array_equal(first.loss_history, second.loss_history)
    other = sae.train_course_sae(x, sae.CourseSAEConfig(epochs=50, seed=5))
    assert not np.array_equal(first.encoder_rows, other.encoder_rows)


def test_initial_weights_are_what_nn_linear_draws_after_manual_seed():
    with torch.random.fork_rng():
        torch.manual_seed(7)
        encoder, decoder = torch.nn.Linear(12, 5), torch.nn.Linear(5, 12)
    model = sae.SparseAutoencoder(12, 5, seed=7)
    for ours, theirs in ((model.encoder, encoder), (model.decoder, decoder)):
        assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)


def test_fast_training_matches_the_course_loop_with_autograd_and_torch_adam():
    x = superposed_activations(tokens=24, d_in=20)
    config = sae.CourseSAEConfig(n_features=8, l1_weight=0.05, learning_rate=3e-3, lr_step_size=40, epochs=120, seed=2)
    result = sae.train_course_sae(x, config)
    model, losses = course_loop(x, config)
    np.testing.assert_allclose(result.loss_history, losses, rtol=1e-5, atol=1e-7)
    for ours, theirs in zip(result.model.parameters(), model.parameters()):
        torch.testing.assert_close(ours, theirs.detach(), rtol=1e-5, atol=1e-6)


def test_result_measures_agree_with_the_trained_model():
    x = superposed_activations(tokens=30)
    result = sae.train_course_sae(x, sae.CourseSAEConfig(epochs=100))
    with torch.no_grad():
        reconstruction, codes = result.model(x)
    assert result.feature_acts.shape == (30, 16)
    np.testing.assert_allclose(result.feature_acts, codes.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(result.mean_activation, codes.numpy().mean(0), rtol=1e-5, atol=1e-7)
    assert result.l0 == pytest.approx(float((codes > 0).sum(1).float().mean()))
    assert result.final_mse == pytest.approx(float(((reconstruction - x) ** 2).mean()), rel=1e-5)
    assert result.encoder_rows.shape == (16, x.shape[1])
    np.testing.assert_array_equal(result.encoder_rows, result.model.encoder.weight.detach().numpy())
    assert result.loss_history.shape == result.mse_history.shape == (100,)
    assert (result.loss_history > result.mse_history).all()  # the L1 term is positive while features fire
    assert result.dead_features == int((codes.max(0).values <= 0).sum())


def test_without_l1_the_loss_is_the_reconstruction_error():
    result = sae.train_course_sae(superposed_activations(tokens=10), sae.CourseSAEConfig(l1_weight=0.0, epochs=20))
    np.testing.assert_array_equal(result.loss_history, result.mse_history)


def test_on_epoch_reports_progress_and_the_loss():
    calls = []
    result = sae.train_course_sae(
        superposed_activations(tokens=10),
        sae.CourseSAEConfig(epochs=25),
        on_epoch=lambda *a: calls.append(a),
        report_every=10,
    )
    assert [(epoch, total) for epoch, total, _ in calls] == [(10, 25), (20, 25), (25, 25)]
    assert [loss for *_, loss in calls] == pytest.approx([result.loss_history[e - 1] for e in (10, 20, 25)], rel=1e-6)


def test_accepts_numpy_and_double_activations():
    x = superposed_activations(tokens=8)
    from_numpy = sae.train_course_sae(x.double().numpy(), sae.CourseSAEConfig(epochs=10))
    from_tensor = sae.train_course_sae(x, sae.CourseSAEConfig(epochs=10))
    np.testing.assert_array_equal(from_numpy.encoder_rows, from_tensor.encoder_rows)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"n_features": 0}, "n_features"),
        ({"n_features": 4097}, "n_features"),
        ({"n_features": 2.5}, "n_features"),
        ({"n_features": True}, "n_features"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 5001}, "epochs"),
        ({"l1_weight": -0.1}, "l1_weight"),
        ({"l1_weight": float("nan")}, "l1_weight"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": float("inf")}, "learning_rate"),
        ({"lr_step_size": 0}, "lr_step_size"),
        ({"lr_gamma": 0.0}, "lr_gamma"),
        ({"seed": -1}, "seed"),
    ],
)
def test_config_validation_names_the_setting(changes, message):
    with pytest.raises(sae.SAEInputError, match=message):
        sae.train_course_sae(superposed_activations(tokens=4), sae.CourseSAEConfig(**changes))


def test_validation_messages_are_for_a_learner():
    with pytest.raises(sae.SAEInputError) as error:
        sae.CourseSAEConfig(n_features=5000).validated()
    assert (
        str(error.value) == "The number of SAE features (n_features) must be a whole number from 1 to 4,096; got 5000."
    )
    assert sae.CourseSAEConfig().validated() == sae.CourseSAEConfig()


@pytest.mark.parametrize(
    "activations, message",
    [
        (torch.zeros(0, 8), "no tokens"),
        (torch.zeros(8), "one row per token"),
        (torch.full((3, 4), float("nan")), "NaN"),
    ],
)
def test_unusable_activations_are_refused(activations, message):
    with pytest.raises(sae.SAEInputError, match=message):
        sae.train_course_sae(activations)


# --- pretrained SAEs in SAELens' format -------------------------------------------------------------


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


# --- from the hub (faked: no network in tests) ------------------------------------------------------


class FakeHub:
    """Stands in for ``hf_hub_download``: serves a folder the test wrote, or fails as the hub does."""

    def __init__(self, folder: Path | None = None, error: Exception | None = None):
        self.folder, self.error, self.calls = folder, error, []

    def __call__(self, repo_id, filename, *, subfolder=None, revision=None, local_files_only=False):
        self.calls.append((repo_id, subfolder, filename, local_files_only))
        if self.error is not None:
            raise self.error
        return str(self.folder / filename)


OFFLINE = LocalEntryNotFoundError(
    "An error happened while trying to locate the file on the Hub and we cannot find the requested files in the local cache."
)


def test_fetch_downloads_both_files_through_the_hub_client(tmp_path, monkeypatch):
    hub = FakeHub(write_sae_folder(tmp_path / "snapshot" / "blocks.8.hook_resid_pre"))
    monkeypatch.setattr(sae, "hf_hub_download", hub)
    model = sae.fetch_release_sae(8, local_files_only=True)
    repo, subfolder = sae.GPT2_SMALL_RES_JB.repo_id, "blocks.8.hook_resid_pre"
    assert hub.calls == [(repo, subfolder, "cfg.json", True), (repo, subfolder, "sae_weights.safetensors", True)]
    assert model.source == f"{repo}/{subfolder}" and model.layer == 8


def test_fetch_offline_says_what_is_missing_and_how_to_get_it(monkeypatch):
    monkeypatch.setattr(sae, "hf_hub_download", FakeHub(error=OFFLINE))
    with pytest.raises(sae.SAELoadError) as error:
        sae.fetch_pretrained_sae("jbloom/GPT2-Small-SAEs-Reformatted", "blocks.8.hook_resid_pre")
    message = str(error.value)
    for part in (
        "jbloom/GPT2-Small-SAEs-Reformatted",
        "blocks.8.hook_resid_pre",
        "cfg.json",
        "offline",
        "internet access",
        "Hugging Face cache",
    ):
        assert part in message, (part, message)
    assert isinstance(error.value.__cause__, LocalEntryNotFoundError)


def test_fetch_of_an_unknown_repository_says_so(monkeypatch):
    httpx2 = pytest.importorskip("httpx2")  # huggingface_hub's HTTP library: its errors carry a response
    response = httpx2.Response(404, request=httpx2.Request("GET", "https://huggingface.co/nobody/nothing"))
    monkeypatch.setattr(
        sae, "hf_hub_download", FakeHub(error=RepositoryNotFoundError("Repository Not Found", response=response))
    )
    with pytest.raises(sae.SAELoadError, match=r"nobody/nothing .*no such repository"):
        sae.fetch_pretrained_sae("nobody/nothing", "blocks.0.hook_resid_pre")


def test_fetch_turns_any_other_failure_into_a_load_error(monkeypatch):
    monkeypatch.setattr(sae, "hf_hub_download", FakeHub(error=OSError("No space left on device")))
    with pytest.raises(sae.SAELoadError, match="OSError: No space left on device"):
        sae.fetch_pretrained_sae("jbloom/GPT2-Small-SAEs-Reformatted", "blocks.8.hook_resid_pre")


def test_command_line_download(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sae, "hf_hub_download", FakeHub(write_sae_folder(tmp_path / "snapshot")))
    assert sae.main(["--layers", "8"]) == 0
    assert "blocks.8.hook_resid_pre" in capsys.readouterr().out
    monkeypatch.setattr(sae, "hf_hub_download", FakeHub(error=OFFLINE))
    assert sae.main(["--layers", "8"]) == 1
    assert "not available" in capsys.readouterr().err


# --- catalogue, Neuronpedia, top features -----------------------------------------------------------


def test_catalogue_of_gpt2_small_residual_saes():
    release = sae.PRETRAINED_RELEASES["gpt2-small-res-jb"]
    assert release is sae.GPT2_SMALL_RES_JB
    assert (release.repo_id, release.d_in, release.d_sae) == ("jbloom/GPT2-Small-SAEs-Reformatted", 768, 24_576)
    assert release.subfolder(8) == release.hook_name(8) == "blocks.8.hook_resid_pre"
    assert release.layers == tuple(range(12))
    with pytest.raises(sae.SAEInputError, match="layers 0 to 11"):
        release.subfolder(12)


def test_neuronpedia_url():
    assert sae.neuronpedia_url(8, 1234) == "https://www.neuronpedia.org/gpt2-small/8-res-jb/1234"
    assert sae.neuronpedia_url(0, 24_575) == "https://www.neuronpedia.org/gpt2-small/0-res-jb/24575"
    with pytest.raises(sae.SAEInputError, match="0 to 24,575"):
        sae.neuronpedia_url(8, 24_576)
    with pytest.raises(sae.SAEInputError, match="layer"):
        sae.neuronpedia_url(-1, 5)


# features:     0    1    2    3    4    5
ACTS = np.array(
    [
        [0.0, 5.0, 0.0, 1.8, 0.0, 0.0],  # token 0: feature 1 fires hard, once
        [0.0, 0.0, 0.0, 1.9, 2.0, 0.0],  # token 1
        [0.0, 0.0, 0.0, 1.7, 0.0, 0.0],  # token 2: feature 3 fires a little everywhere
    ]
)


def test_top_features_over_the_text_by_peak():
    hits = sae.top_features(ACTS, k=6)
    assert [(h.index, h.activation, h.token) for h in hits] == [
        (1, 5.0, 0),
        (4, 2.0, 1),
        (3, pytest.approx(1.9), 1),
    ]  # 0, 2, 5 never fire
    assert [h.index for h in sae.top_features(ACTS, k=2)] == [1, 4]


def test_top_features_over_the_text_by_mean_favours_dense_features():
    hits = sae.top_features(torch.tensor(ACTS), k=3, by="mean")
    assert [h.index for h in hits] == [3, 1, 4]
    assert hits[0].activation == pytest.approx(1.8) and hits[0].token == 1


def test_top_features_of_one_token():
    assert [(h.index, h.token) for h in sae.top_features(ACTS, k=5, token=1)] == [(4, 1), (3, 1)]
    assert [(h.index, h.token) for h in sae.top_features(ACTS, k=5, token=-1)] == [(3, 2)]


@pytest.mark.parametrize(
    "kwargs, message",
    [({"token": 3}, "outside the text"), ({"k": 0}, r"\(k\)"), ({"by": "median"}, "'max' or 'mean'")],
)
def test_top_features_refuses_what_it_cannot_rank(kwargs, message):
    with pytest.raises(sae.SAEInputError, match=message):
        sae.top_features(ACTS, **kwargs)


def test_pretrained_features_feed_top_features(tmp_path):
    model = sae.load_pretrained_sae(write_sae_folder(tmp_path / "sae"))
    x = torch.randn(6, D_IN, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        acts = model.encode(x)  # (6, d_sae)
    hits = sae.top_features(acts, k=5)
    assert hits[0].activation == pytest.approx(float(acts.max()))
    assert [h.activation for h in hits] == sorted((h.activation for h in hits), reverse=True)
    assert all(acts[h.token, h.index] == pytest.approx(h.activation) for h in hits)


def test_a_big_encoding_split_over_two_threads_gives_the_same_features(tmp_path, monkeypatch):
    tensors = sae_tensors(d_sae=D_SAE + 1)  # an odd number of features: unequal halves
    model = sae.load_pretrained_sae(write_sae_folder(tmp_path / "sae", tensors, d_sae=D_SAE + 1))
    x = torch.randn(7, D_IN, generator=torch.Generator().manual_seed(2))
    whole = model.encode(x)
    monkeypatch.setattr(sae, "SPLIT_ENCODE_WORK", 1)  # as for a release-sized SAE (768 -> 24,576 on 64 tokens)
    split = model.encode(x)
    assert split.shape == (7, D_SAE + 1) and split.is_contiguous()
    torch.testing.assert_close(split, whole)
    np.testing.assert_allclose(
        split.numpy(), hand_encode(x.double().numpy(), tensors, apply_b_dec=True), rtol=1e-5, atol=1e-5
    )


# --- settings: how the SAE's training text was read -----------------------------------------------


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


def test_fetching_a_release_sae_applies_its_catalogue_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(
        sae,
        "hf_hub_download",
        FakeHub(write_sae_folder(tmp_path / "snapshot" / "blocks.8.hook_resid_pre", prepend_bos=DROP)),
    )
    model = sae.fetch_release_sae(8, local_files_only=True)
    assert (model.prepend_bos, model.context_size, model.center_writing_weights) == (True, 128, True)
    # fetched by its repository's name (as `python -m superpos_core.sae --repo ...` does), it is still the release's
    assert sae.fetch_pretrained_sae(sae.GPT2_SMALL_RES_JB.repo_id, "blocks.8.hook_resid_pre").center_writing_weights
    assert not sae.fetch_pretrained_sae("someone/else", "blocks.8.hook_resid_pre").center_writing_weights


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


# --- what a pretrained SAE reads: the tiny GPT-2 standing in for GPT-2 small -------------------------

TEXT = "It was the best of times, it was the worst of times."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return lm.load(save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2")), allow_any=True)


def tiny_sae(folder: Path, hook: str = "blocks.1.hook_resid_pre", **cfg_changes) -> sae.PretrainedSAE:
    tensors = sae_tensors(d_in=TINY_D_MODEL, d_sae=48)
    return sae.load_pretrained_sae(
        write_sae_folder(folder, tensors, d_in=TINY_D_MODEL, d_sae=48, hook_name=hook, hook_layer=DROP, **cfg_changes)
    )


def hidden_state(model, ids: list[int], index: int) -> torch.Tensor:
    """By hand: one forward pass of the Hugging Face model over exactly ``ids``, hidden state ``index``: (len(ids), d_model)."""
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[index][0]


def with_centred_writing_weights(model):
    """A copy of a GPT-2 whose every weight that writes to the residual stream (token and position
    embeddings, each attention and MLP output projection, and their biases) has zero mean over d_model,
    as TransformerLens' center_writing_weights makes them. (Conv1D weights are (in, out): out is last.)"""
    centred = copy.deepcopy(model)
    t = centred.transformer
    writers = [t.wte.weight, t.wpe.weight] + [
        w
        for block in t.h
        for w in (block.attn.c_proj.weight, block.attn.c_proj.bias, block.mlp.c_proj.weight, block.mlp.c_proj.bias)
    ]
    with torch.no_grad():
        for weight in writers:
            weight -= weight.mean(dim=-1, keepdim=True)
    return centred


@pytest.mark.parametrize(
    "hook, index", [("blocks.0.hook_resid_pre", 0), ("blocks.1.hook_resid_pre", 1), ("blocks.0.hook_resid_post", 1)]
)
def test_centred_input_is_the_residual_stream_of_the_model_with_centred_writing_weights(tiny, tmp_path, hook, index):
    model_sae = tiny_sae(
        tmp_path / "sae", hook, context_size=64, model_from_pretrained_kwargs={"center_writing_weights": True}
    )
    analysis = lm.analyse_text(tiny, TEXT, 1)
    fed = sae.sae_input(model_sae, tiny, analysis.token_ids, analysis)
    assert (fed.hidden_state, fed.bos, fed.windows, fed.window, fed.centred, fed.reused) == (
        index,
        analysis.bos_id,
        1,
        64,
        True,
        True,
    )
    by_hand = hidden_state(with_centred_writing_weights(tiny.model), [analysis.bos_id, *analysis.token_ids], index)[
        1:
    ]  # BOS row dropped
    assert fed.activations.shape == (len(analysis.token_ids), TINY_D_MODEL) and fed.activations.dtype == torch.float32
    torch.testing.assert_close(fed.activations, by_hand, rtol=1e-5, atol=1e-5)
    assert analysis.hidden_states[index].mean(dim=1).abs().max() > 1e-3  # so the centring did something
    # and the SAE's features are those of its input
    torch.testing.assert_close(model_sae.encode(fed.activations), model_sae.encode(by_hand), rtol=1e-5, atol=1e-5)


def test_a_long_text_is_read_in_windows_each_after_its_own_bos(tiny, tmp_path, monkeypatch):
    model_sae = tiny_sae(tmp_path / "sae", context_size=8)  # 7 tokens of text after each BOS
    analysis = lm.analyse_text(tiny, TEXT, 1)
    ids, bos = analysis.token_ids, analysis.bos_id
    assert len(ids) > 3 * 7 and len(ids) % 7  # several full windows and a shorter last one
    by_hand = torch.cat(
        [hidden_state(tiny.model, [bos, *ids[start : start + 7]], 1)[1:] for start in range(0, len(ids), 7)]
    )
    fed = sae.sae_input(model_sae, tiny, ids, analysis)
    assert (fed.windows, fed.window, fed.bos, fed.centred, fed.reused) == (-(-len(ids) // 7), 8, bos, False, False)
    torch.testing.assert_close(fed.activations, by_hand, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(
        fed.activations[7:], analysis.hidden_states[1][7:], atol=1e-3
    )  # beyond the first window, not the analysis's
    monkeypatch.setattr(sae, "WINDOWS_PER_PASS", 2)  # full windows in batches of 2, the shorter one alone
    torch.testing.assert_close(sae.sae_input(model_sae, tiny, ids).activations, by_hand, rtol=1e-5, atol=1e-5)


def test_without_bos_or_centring_the_hidden_states_pass_through_unchanged(tiny, tmp_path):
    analysis = lm.analyse_text(tiny, TEXT, 1)
    no_bos = tiny_sae(tmp_path / "no-bos", context_size=64, prepend_bos=False)
    fed = sae.sae_input(no_bos, tiny, analysis.token_ids, analysis)
    assert (fed.bos, fed.centred, fed.reused) == (None, False, False)  # the analysis read a BOS first: not reusable
    torch.testing.assert_close(fed.activations, hidden_state(tiny.model, analysis.token_ids, 1), rtol=1e-5, atol=1e-5)
    after_bos = tiny_sae(tmp_path / "bos", context_size=64)
    fed = sae.sae_input(after_bos, tiny, analysis.token_ids, analysis)
    assert fed.reused and torch.equal(fed.activations, analysis.hidden_states[1])
    fed.activations.zero_()
    assert analysis.hidden_states[1].abs().sum() > 0  # a copy: the analysis, shared with other requests, is left alone
    torch.testing.assert_close(
        sae.sae_input(after_bos, tiny, analysis.token_ids).activations, analysis.hidden_states[1], rtol=1e-5, atol=1e-5
    )


def test_a_window_is_never_longer_than_the_model_reads(tiny, tmp_path):
    model_sae = tiny_sae(tmp_path / "sae", context_size=1000)
    ids = lm.analyse_text(tiny, TEXT * 3, 1).token_ids  # cut to the tiny model's 64 positions, BOS included
    assert sae.sae_input(model_sae, tiny, ids).window == tiny.context_length == 64


@pytest.mark.parametrize(
    "hook, cfg_changes, ids, message",
    [
        ("blocks.1.hook_resid_post", {}, [1, 2], "final norm"),
        ("blocks.2.hook_resid_pre", {}, [1, 2], "final norm"),
        ("blocks.0.attn.hook_z", {}, [1, 2], "only SAEs of the residual stream"),
        ("blocks.1.hook_resid_pre", {}, [], "no tokens"),
    ],
)
def test_what_cannot_be_fed_is_a_clear_input_error(tiny, tmp_path, hook, cfg_changes, ids, message):
    with pytest.raises(sae.SAEInputError, match=message):
        sae.sae_input(tiny_sae(tmp_path / "sae", hook, **cfg_changes), tiny, ids)


def test_an_sae_of_another_width_is_refused(tiny, tmp_path):
    model_sae = sae.load_pretrained_sae(
        write_sae_folder(tmp_path / "sae", hook_name="blocks.1.hook_resid_pre", hook_layer=1)
    )
    with pytest.raises(sae.SAEInputError, match=f"reads {D_IN}-dimensional activations"):
        sae.sae_input(model_sae, tiny, [1, 2])
