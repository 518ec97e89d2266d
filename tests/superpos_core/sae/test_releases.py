"""The catalogue of pretrained releases, read from releases.json."""

import pytest

from superpos_core import sae


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
