import numpy as np
import torch
from torch import nn

from superpos_core import rank, resnets
from superpos_core.capture import capture_activations
from superpos_core.conv_rank import StreamingGram, channels_first, conv_layer_names, rank_table


def small_convnet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, stride=2), nn.ReLU(), nn.Conv2d(12, 40, 1)
    ).eval()


def test_streaming_gram_matches_numpy_svd_on_channels_first_data():
    model = small_convnet()
    batches = [torch.randn(5, 3, 10, 10) for _ in range(3)]
    table = {row.layer: row for row in rank_table(model, batches)}
    with torch.no_grad(), capture_activations(model, conv_layer_names(model)) as acts:
        everything = {}
        for x in batches:
            model(x)
            for name, a in acts.items():
                everything.setdefault(name, []).append(a)
    for name, parts in everything.items():
        matrix = channels_first(torch.cat(parts)).numpy()  # (C, N·H·W), all 15 samples at once
        values = np.linalg.svd(matrix, compute_uv=False)
        assert table[name].effective_rank == rank.effective_rank(values), name
        assert table[name].columns == matrix.shape[1]
    gram = StreamingGram()
    for x in batches:
        gram.add("x", x)
    np.testing.assert_allclose(
        gram.singular_values("x"),
        np.linalg.svd(channels_first(torch.cat(batches)).numpy(), compute_uv=False),
        rtol=1e-6,
    )


def captured_channels_first(model: nn.Module, batches: list[torch.Tensor], names: list[str]) -> dict[str, np.ndarray]:
    """Every named layer's activations over all ``batches`` at once, (C, N·H·W) float64: the unstreamed matrix."""
    with torch.no_grad(), capture_activations(model, names) as acts:
        everything = {}
        for x in batches:
            model(x)
            for name, a in acts.items():
                everything.setdefault(name, []).append(a)
    return {name: channels_first(torch.cat(parts)).double().numpy() for name, parts in everything.items()}


def test_streamed_centred_rank_matches_an_svd_of_the_explicitly_centred_matrix():
    model = small_convnet()
    generator = torch.Generator().manual_seed(1)
    batches = [
        torch.randn(5, 3, 10, 10, generator=generator) + 0.5 for _ in range(3)
    ]  # off-centre inputs: every channel has a mean
    table = {row.layer: row for row in rank_table(model, batches)}
    differs = 0
    for name, matrix in captured_channels_first(model, batches, conv_layer_names(model)).items():
        centred = matrix - matrix.mean(
            axis=1, keepdims=True
        )  # (C, N·H·W), each channel's mean over the sample taken away
        values = np.linalg.svd(centred, compute_uv=False)
        assert table[name].centred_effective_rank == rank.effective_rank(values), name
        assert table[name].effective_rank == rank.effective_rank(np.linalg.svd(matrix, compute_uv=False)), name
        assert table[name].rank_to_reach == rank.rank_to_reach(np.linalg.svd(matrix, compute_uv=False)), name
        differs += table[name].centred_effective_rank != table[name].effective_rank
    assert differs  # the two counts are not the same number under two names
    course_only = {
        row.layer: row for row in rank_table(model, batches, centred=False)
    }  # the course's columns alone, half the eigen-work
    assert all(row.centred_effective_rank is None and row.centred_ratio is None for row in course_only.values())
    assert [(r.effective_rank, r.rank_to_reach) for r in course_only.values()] == [
        (table[n].effective_rank, table[n].rank_to_reach) for n in course_only
    ]
    gram = StreamingGram()
    for x in batches:
        gram.add("x", x)
    inputs = channels_first(torch.cat(batches)).double().numpy()
    np.testing.assert_allclose(
        gram.singular_values("x", centred=True),
        np.linalg.svd(inputs - inputs.mean(1, keepdims=True), compute_uv=False),
        rtol=1e-6,
        atol=1e-9,
    )


def test_kept_layers_are_centred_too():
    model = small_convnet()
    generator = torch.Generator().manual_seed(2)
    batches = [torch.randn(2, 3, 4, 4, generator=generator) + 1.0 for _ in range(3)]
    gram = StreamingGram(expected_samples=6)
    from superpos_core.capture import hooks_calling

    with torch.no_grad(), hooks_calling(model, conv_layer_names(model), gram.add):
        for x in batches:
            model(x)
    assert "4" in gram.kept  # 40 channels, 6 columns: the columns×columns path
    matrix = captured_channels_first(model, batches, ["4"])["4"]
    expected = np.linalg.svd(matrix - matrix.mean(1, keepdims=True), compute_uv=False)  # (6,)
    values, centred = gram.spectra("4")
    # Compared as energies (squared singular values, what the ranks add up): centring leaves one exact zero, and a
    # rounding-sized eigenvalue of 1e-16 has a square root of 1e-8.
    np.testing.assert_allclose(centred[: len(expected)] ** 2, expected**2, rtol=1e-6, atol=1e-12)
    assert len(centred) == 40 and np.abs(centred[len(expected) :]).max() < 1e-6
    np.testing.assert_allclose(values[: len(expected)], np.linalg.svd(matrix, compute_uv=False), rtol=1e-6, atol=1e-9)
    assert not np.allclose(values[: len(expected)], centred[: len(expected)])


def test_channels_first_is_not_the_courses_reshape():
    a = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)  # N=2, C=3
    ours = channels_first(a)
    assert torch.equal(ours[1], torch.cat([a[0, 1].ravel(), a[1, 1].ravel()]))  # row 1 = channel 1 of every sample
    assert not torch.equal(ours, a.reshape(3, -1))  # the course's reshape mixes samples and channels


def test_sample_bound_is_flagged():
    model = small_convnet()
    rows = {row.layer: row for row in rank_table(model, [torch.randn(1, 3, 4, 4)])}
    assert rows["4"].sample_bound  # 40 channels, 1 sample at 1x1: 1 column
    assert rows["0"].columns == 16 and rows["0"].sample_bound == (16 < 4 * 8)


def test_every_conv_layer_is_named_as_torchvision_names_it():
    names = {key: resnets.layer_names(key) for key in resnets.CATALOGUE}
    assert len(names["mnist-resnet"]) == 20 and len(names["resnet18"]) == 20 and len(names["resnet50"]) == 53
    assert names["mnist-resnet"] == names["resnet18"]  # one code path: the same names mean the same places
    assert "layer1.0.conv1" in names["resnet50"] and "layer2.0.downsample.0" in names["resnet50"]


def test_one_forward_captures_every_conv_layer():
    model = resnets.build("resnet18").eval()
    names = conv_layer_names(model)
    with torch.no_grad(), capture_activations(model, names) as acts:
        model(torch.randn(1, 3, 64, 64))
    assert list(acts) == names and acts["layer4.1.conv2"].shape[1] == 512


def test_layers_with_fewer_columns_than_channels_keep_their_activations():
    model = small_convnet()  # the last layer has 40 channels; 2 images at 1x1... give 2 columns each
    batches = [torch.randn(2, 3, 4, 4) for _ in range(3)]
    gram = StreamingGram(expected_samples=sum(len(x) for x in batches))
    from superpos_core.capture import hooks_calling

    with torch.no_grad(), hooks_calling(model, conv_layer_names(model), gram.add):
        for x in batches:
            model(x)
    assert "4" in gram.kept and "0" in gram.gram  # 40 channels × 6 columns kept; 8 channels × 96 summed
    with torch.no_grad(), capture_activations(model, ["4"]) as acts:
        everything = []
        for x in batches:
            model(x)
            everything.append(acts["4"])
    expected = np.linalg.svd(channels_first(torch.cat(everything)).double().numpy(), compute_uv=False)
    np.testing.assert_allclose(gram.singular_values("4")[: len(expected)], expected, rtol=1e-6, atol=1e-9)
    assert len(gram.singular_values("4")) == 40  # padded with the zero singular values


def test_upper_gram_sums_the_upper_triangle_of_the_whole_product_block_by_block():
    from superpos_core.conv_rank import BLOCK, UpperGram

    generator = torch.Generator().manual_seed(0)
    size = 2 * BLOCK + 37  # three row blocks, the last one ragged
    pieces = [torch.randn(size, columns, generator=generator, dtype=torch.float64) for columns in (50, 3, 120)]
    gram = UpperGram(size)
    for piece in pieces:
        gram.add(piece)
    assert len(gram.blocks) == 6  # (0,0) (0,1) (0,2) (1,1) (1,2) (2,2): never a block below the diagonal
    whole = torch.cat(pieces, dim=1)
    expected = whole @ whole.T
    upper = gram.matrix()
    torch.testing.assert_close(upper.triu(), expected.triu())
    assert (
        torch.count_nonzero(upper[BLOCK:, :BLOCK]) == 0 and torch.count_nonzero(upper[2 * BLOCK :, : 2 * BLOCK]) == 0
    )  # never summed
    torch.testing.assert_close(torch.linalg.eigvalsh(upper, UPLO="U"), torch.linalg.eigvalsh(expected))
