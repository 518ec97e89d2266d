"""The public API contract of the MNIST tab, called the way course pages call it."""

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from tests import helpers
from tests.contracts import ENDPOINTS, summary_keys

pytestmark = pytest.mark.slow  # serves the app: not in the quick run (-m "not slow")


@pytest.fixture(scope="module")
def client(server_url):
    return Client(server_url, verbose=False)


@pytest.fixture(scope="module")
def digit_file(tmp_path_factory):
    sample = helpers.sample().test
    path = tmp_path_factory.mktemp("digits") / "digit.png"
    Image.fromarray(helpers.digit_on_paper(sample.images[0])).save(path)
    return path, int(sample.labels[0])


def call(client, path):
    return client.predict({"background": handle_file(str(path)), "layers": [], "composite": None}, api_name="/mnist")


def test_endpoints_are_named(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == set(ENDPOINTS)  # as a client sees them over the wire


def test_mnist_contract(client, digit_file):
    path, label = digit_file
    summary = call(client, path)[0]
    assert set(summary) == summary_keys("/mnist")
    assert isinstance(summary["prediction"], int) and summary["prediction"] == label
    assert len(summary["probabilities"]) == 10 and all(isinstance(p, float) for p in summary["probabilities"])
    assert abs(sum(summary["probabilities"]) - 1) < 1e-3
    assert {k: len(v) for k, v in summary["activations"].items()} == {"fc1": 128, "fc2": 64, "fc3": 10}
    assert all(isinstance(v, int) for v in summary["effective_rank"].values())
    assert set(summary["effective_rank"]) == {"fc1", "fc2"}
    sae = summary["sae"]  # the drawing's SAE features, strongest first
    assert set(sae) == {"l0", "explained_variance", "features"} and isinstance(sae["l0"], float)
    assert sae["l0"] == len(sae["features"]) >= 1 and 0 < sae["explained_variance"] <= 1
    assert all(isinstance(i, int) and v > 0 for i, v in sae["features"])
    assert [v for _i, v in sae["features"]] == sorted((v for _i, v in sae["features"]), reverse=True)


def test_composite_as_the_browser_sends_it(client, tmp_path):
    sample = helpers.sample().test
    path = tmp_path / "canvas.png"
    helpers.as_canvas_rgba(helpers.digit_on_paper(sample.images[4])).save(path)
    result = client.predict({"background": None, "layers": [], "composite": handle_file(str(path))}, api_name="/mnist")
    assert result[0]["prediction"] == sample.labels[4]


def bad_files(tmp_path):
    sample = helpers.sample().test
    files = {}
    Image.new("RGBA", (280, 280), (0, 0, 0, 0)).save(files.setdefault("empty", tmp_path / "empty.png"))
    Image.new("L", (280, 280), 0).save(files.setdefault("black", tmp_path / "black.png"))
    dot = np.full((280, 280), 255, np.uint8)
    dot[140:146, 140:146] = 0
    Image.fromarray(dot).save(files.setdefault("dot", tmp_path / "dot.png"))
    (tmp_path / "notes.txt").write_text("not a picture")
    files["text"] = tmp_path / "notes.txt"
    (tmp_path / "notes.png").write_text("not a picture either, whatever its name says")
    files["text named .png"] = tmp_path / "notes.png"
    Image.new("1", (15000, 15000)).save(
        files.setdefault("decompression bomb", tmp_path / "bomb.png")
    )  # 225 million pixels, a few dozen kB
    cut = tmp_path / "cut.png"
    Image.fromarray(helpers.digit_on_paper(sample.images[0])).save(cut)
    cut.write_bytes(cut.read_bytes()[:300])
    files["truncated"] = cut
    return files


EXPECTED = {
    "empty": "empty",
    "black": "dark all over",
    "dot": "dot",
    "text": "could not be read",
    "text named .png": "could not be read",
    "decompression bomb": "too large",
    "truncated": "could not be read",
}


def test_bad_input_gives_clear_errors_and_the_app_keeps_serving(client, tmp_path, digit_file):
    for name, path in bad_files(tmp_path).items():
        with pytest.raises(AppError) as caught:
            call(client, path)
        assert EXPECTED[name] in str(caught.value), name
        assert "Traceback" not in str(caught.value)
    path, label = digit_file
    assert call(client, path)[0]["prediction"] == label  # the next user is answered normally


def test_large_and_16_bit_uploads(client, tmp_path):
    sample = helpers.sample().test
    big = tmp_path / "big.png"
    Image.fromarray(helpers.digit_on_paper(sample.images[1])).resize((6000, 6000)).save(big)
    wide = tmp_path / "wide.png"
    Image.fromarray(helpers.digit_on_paper(sample.images[2]).astype(np.uint16) * 257).save(wide)
    assert call(client, big)[0]["prediction"] == sample.labels[1]
    assert call(client, wide)[0]["prediction"] == sample.labels[2]


def test_train_endpoint_streams_epochs(client):
    status, table, _plot = client.predict(1, 0, api_name="/mnist_train")
    assert "Done" in status
    rows = table["data"]
    assert len(rows) == 1 and rows[0][0] == 1 and rows[0][2] > 85  # test accuracy in %


def test_toy_contract_and_bad_controls(client):
    summary = client.predict(5, 2, 0.99, 1.0, 1000, 0, api_name="/toy")[0]
    assert set(summary) == summary_keys("/toy")
    assert summary["n_features"] == 5 and summary["m"] == 2 and summary["sparsity"] == 0.99
    assert summary["superposition"] is True and summary["represented"] == 5
    assert len(summary["feature_norms"]) == 5 and min(summary["feature_norms"]) >= 0.9  # the pentagon
    assert isinstance(summary["features_per_dimension"], float) and isinstance(summary["loss"], float)
    for args, message in [
        ((0, 2, 0.5, 1, 100, 0), "features n"),
        ((5, 2, 1.0, 1, 100, 0), "Sparsity"),
        ((5, 0, 0.5, 1, 100, 0), "hidden dimensions m"),
    ]:
        with pytest.raises(AppError, match=message):
            client.predict(*args, api_name="/toy")
    status = client.predict(5, 2, 0.5, 1.0, 10**9, 0, api_name="/toy")[1]
    assert "capped at 20,000" in status  # bounded work, said plainly


def test_toy_sweep_endpoint(client):
    summary = client.predict(5, 2, 0.9, 300, 0, api_name="/toy_sweep")[0]
    assert set(summary) == summary_keys("/toy_sweep")
    assert len(summary["represented"]) == 20 and summary["sparsity"][0] == 0.0
    assert (
        len(summary["superposition"]) == 20
        and summary["superposition"][0] is False
        and summary["superposition"][-1] is True
    )


def test_toy_sae_contract_and_bad_controls(client):
    summary = client.predict(5, 2, 0.99, 1.0, 1000, 0, 10, 0.3, 1500, 0, api_name="/toy_sae")[0]
    assert set(summary) == summary_keys("/toy_sae")
    assert (summary["n_features"], summary["m"], summary["latents"]) == (5, 2, 10)
    assert isinstance(summary["recovered"], int) and summary["recovered"] == 5  # the pentagon, found
    assert len(summary["cosines"]) == 5 and all(len(row) == 10 for row in summary["cosines"])
    assert len(summary["matched_cosine"]) == 5 and min(summary["matched_cosine"]) >= 0.95
    assert 0 < summary["explained_variance"] <= 1 and isinstance(summary["dead"], int)
    assert abs(summary["true_l0"] - 0.05) < 0.01 and summary["l0"] > 0
    for args, message in [
        ((5, 2, 0.99, 1.0, 100, 0, 3, 0.1, 100, 0), "at least one latent per true feature"),
        ((5, 2, 0.99, 1.0, 100, 0, 10, -1, 100, 0), "penalty"),
        ((5, 2, 0.99, 1.0, 100, 0, 10, 0.1, 100, "x"), "SAE seed"),
        ((5, 2, 1.5, 1.0, 100, 0, 10, 0.1, 100, 0), "Sparsity"),
    ]:
        with pytest.raises(AppError, match=message):
            client.predict(*args, api_name="/toy_sae")
    swept = client.predict(5, 2, 0.99, 1.0, 300, 0, None, 200, 0, api_name="/toy_sae_sweep")[0]
    assert set(swept) == summary_keys("/toy_sae_sweep") and swept["latents"] == 10
    assert len(swept["penalties"]) == len(swept["recovered"]) == len(swept["explained_variance"]) == 10


def resnet_call(client, path, model="mnist-resnet", layer="layer1.0.conv1"):
    return client.predict(handle_file(str(path)), model, layer, api_name="/resnet")


def test_resnet_contract(client, digit_file):
    path, label = digit_file
    summary = resnet_call(client, path, layer="layer3.1.conv2")[0]
    assert set(summary) == summary_keys("/resnet")
    assert summary["model"] == "mnist-resnet" and summary["layer"] == "layer3.1.conv2" and summary["caution"] is None
    assert summary["top5"][0][0] == str(label) and len(summary["top5"]) == 5
    assert isinstance(summary["channels"], int) and isinstance(summary["effective_rank"], int)
    assert isinstance(summary["ratio"], float) and isinstance(summary["sample_bound"], bool)
    assert (
        isinstance(summary["centred_effective_rank"], int)
        and 0 < summary["centred_effective_rank"] <= summary["channels"]
    )


def test_resnet_bad_input(client, tmp_path, digit_file):
    from PIL import Image

    photo = Image.open("assets/photos/coffee.jpg")
    readable = {
        "gray.png": photo.convert("L"),
        "rgba.png": photo.convert("RGBA"),
        "cmyk.jpg": photo.convert("CMYK"),
        "wide.png": Image.fromarray(np.asarray(photo.convert("L")).astype(np.uint16) * 257),
        "huge.jpg": photo.resize((8000, 8000)),  # the most this app reads (a JPEG: a PNG this size takes 9 s to write)
    }
    for name, picture in readable.items():
        picture.save(tmp_path / name)
        assert resnet_call(client, tmp_path / name)[0]["channels"] == 16, name
    frames = [photo.convert("P"), photo.rotate(90).convert("P")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert resnet_call(client, tmp_path / "anim.gif")[0]["layer"] == "layer1.0.conv1"
    Image.new("RGB", (1, 1), "black").save(tmp_path / "one.png")
    cut = tmp_path / "cut.jpg"
    photo.save(cut)
    cut.write_bytes(cut.read_bytes()[:500])
    helpers.decompression_bomb_png(tmp_path / "bomb.png")
    helpers.text_named_png(tmp_path / "list.png")
    Image.new("RGBA", (280, 280), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    cases = [
        (tmp_path / "one.png", "too small"),
        (cut, "could not be read"),
        (tmp_path / "bomb.png", "too large to read"),
        (tmp_path / "list.png", "That file is not a picture"),
        (tmp_path / "clear.png", "fully transparent"),
    ]
    for path, message in cases:
        with pytest.raises(AppError, match=message):
            resnet_call(client, path)
    with pytest.raises(AppError, match="no conv layer named"):
        resnet_call(client, digit_file[0], layer="layer9.9.conv9")
    assert resnet_call(client, digit_file[0])[0]["top5"][0][0] == str(digit_file[1])  # still serving
    caution = resnet_call(client, "assets/photos/cat.jpg")[0][
        "caution"
    ]  # a photo for the digit model: analysed, with a caution
    assert "only knows the ten digits" in caution


def test_unavailable_model_says_how_to_get_it(client, digit_file, monkeypatch, tmp_path):
    import urllib.error

    import torch

    from superpos_core import resnets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.setattr(resnets.loading, "_failed_downloads", {})
    with pytest.raises(AppError, match="resnet50-11ad3fa6.pth"):
        resnet_call(client, digit_file[0], model="resnet50")


SENTENCE = "It was the best of times, it was the worst of times."


def test_lm_contract_with_the_offline_model(client):
    summary = client.predict(SENTENCE, "smollm2-135m-offline", 10, api_name="/lm")[0]
    assert set(summary) == summary_keys("/lm")
    assert summary["bos"] == "<|im_start|>" and "<|im_start|>" not in summary["tokens"]
    assert summary["model"] == "smollm2-135m-offline" and summary["layer"] == 10 and summary["d_model"] == 576
    assert summary["tokens"][:4] == ["It", " was", " the", " best"]
    assert 0 <= summary["effective_rank"] <= min(len(summary["tokens"]), 576)
    assert len(summary["next_tokens"]) == 5 and all(0 <= p <= 1 for _token, p in summary["next_tokens"])


def test_lm_texts_from_everywhere_and_bad_ones(client):
    for text in ("🙂👍 emoji", "超位置の表現", "مرحبا بالعالم", "tab\tand\x07bell"):
        assert client.predict(text, "smollm2-135m-offline", 3, api_name="/lm")[0]["tokens"], text
    with pytest.raises(AppError):
        client.predict("   ", "smollm2-135m-offline", 3, api_name="/lm")
    with pytest.raises(AppError):
        client.predict(SENTENCE, "smollm2-135m-offline", 99, api_name="/lm")
    long = client.predict("word " * 20_000, "smollm2-135m-offline", 3, api_name="/lm")[0]
    assert len(long["tokens"]) <= 1024  # truncated, and said so in the page


def test_lm_sae_contract(client):
    summary = client.predict(SENTENCE, "smollm2-135m-offline", 10, 16, 0.01, 500, 0, api_name="/lm_sae")[0]
    assert set(summary) == summary_keys("/lm_sae")
    assert summary["features"] == 16 and len(summary["mean_activation"]) == 16
    assert isinstance(summary["l0"], float) and summary["mse"] >= 0


def test_lm_concepts_contract_and_bad_input(client):
    from superpos_core import concepts

    words, sentences = concepts.format_concepts(concepts.CONCEPTS), concepts.format_sentences(concepts.SENTENCES)
    summary = client.predict(words, sentences, "smollm2-135m-offline", 10, api_name="/lm_concepts")[0]
    assert set(summary) == summary_keys("/lm_concepts")
    assert (
        summary["model"] == "smollm2-135m-offline"
        and summary["layer"] == 10
        and summary["d_model"] == 576
        and summary["sentences"] == 24
    )
    assert summary["concepts"] == summary["labels"] == ["positive", "negative", "neutral"]
    for key in ("correlations", "centred_correlations"):
        assert all(-1 <= summary[key][c][label] <= 1 for c in summary["concepts"] for label in summary["labels"])
    assert 0 < summary["pca_explained"][1] <= summary["pca_explained"][0] < 1
    bad = [
        ("", sentences, "smollm2-135m-offline", 10, "empty"),
        ("positive: good, xqzvbnm\nnegative: bad", sentences, "smollm2-135m-offline", 10, "single token"),
        (words, "positive: Fine.\nnegative:\nneutral: Noon.", "smollm2-135m-offline", 10, "no sentence"),
        (words, sentences * 200, "smollm2-135m-offline", 10, "at most 20,000"),
        (words, sentences, "gpt-9", 10, "not in the list of choices"),  # the dropdown itself refuses it
        (
            words,
            sentences,
            "smollm2-135m-offline",
            99,
            "does not exist|greater than maximum",
        ),  # ours, or the slider's own check
    ]
    for *args, message in bad:
        with pytest.raises(AppError, match=message):
            client.predict(*args, api_name="/lm_concepts")


def test_lm_features_and_a_features_dashboard_through_the_api(client):
    """/lm_features then /lm_feature, as a course page would chain them; the dashboard's top example, sent back
    through /lm_features, makes its feature fire there again."""
    summary = client.predict(SENTENCE, "smollm2-135m-offline", None, api_name="/lm_features")[0]
    assert set(summary) == summary_keys("/lm_features")
    assert summary["tokens"][:4] == ["It", " was", " the", " best"] and "".join(summary["tokens"]) == SENTENCE
    assert len(summary["per_token"]) == len(summary["tokens"]) and summary["top_features"]
    index, activation, position = summary["top_features"][0]
    assert [index, activation] in summary["per_token"][position]
    assert client.predict(SENTENCE, "smollm2-135m-offline", summary["layer"], api_name="/lm_features")[0] == summary
    shown = client.predict("smollm2-135m-offline", None, index, api_name="/lm_feature")[0]
    assert set(shown) == summary_keys("/lm_feature") and shown["feature"] == index and shown["density"] > 0
    assert len(shown["top_logits"]) == len(shown["bottom_logits"]) == 10
    example = shown["top_examples"][0]
    again = client.predict("".join(example["tokens"]), "smollm2-135m-offline", None, api_name="/lm_features")[0]
    if again["tokens"] == example["tokens"]:  # the same tokens when read afresh
        assert any(f == index and a > 0 for f, a in again["per_token"][example["position"]])
    with pytest.raises(AppError, match="reads layer 15"):
        client.predict(SENTENCE, "smollm2-135m-offline", 3, api_name="/lm_features")
    with pytest.raises(AppError, match="features? 0 to|from 0 to"):
        client.predict("smollm2-135m-offline", None, 10**6, api_name="/lm_feature")


def test_lm_steer_through_the_api_streams_and_strength_zero_is_the_baseline(client):
    """/lm_steer as a course page calls it: strength 0 gives exactly the baseline; turned up, the summary grows token
    by token (``submit``) and the last one is complete; bad input gets a message with the range."""
    model, king = "smollm2-135m-offline", 1189  # a feature of "king" before a name
    zero = client.predict("Yesterday I went to the market and", model, None, king, 0, 8, None, api_name="/lm_steer")[0]
    assert set(zero) == summary_keys("/lm_steer") and zero["complete"] and zero["kl"] == 0
    assert zero["steered"] == zero["baseline"] != "" and zero["tokens"] == 8
    job = client.submit("Yesterday I went to the market and", model, None, king, 1.5, 6, 3, api_name="/lm_steer")
    job.result()
    grown = [outputs[0]["generated"] for outputs in job.outputs()]
    assert grown == list(range(grown[0], 7)) and grown[0] <= 1  # streamed: one summary per token pair
    last = job.outputs()[-1][0]
    assert last["complete"] and last["kl"] > 0 and last["steered"] != last["baseline"]
    assert last["feature_activation"]["steered"] > last["feature_activation"]["baseline"]
    with pytest.raises(AppError, match="from 1 to 64|greater than maximum"):
        client.predict("Hello", model, None, king, 1.0, 65, None, api_name="/lm_steer")
    with pytest.raises(AppError, match="prompt is empty"):
        client.predict(" ", model, None, king, 1.0, 4, None, api_name="/lm_steer")
