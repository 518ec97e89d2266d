"""The catalogue of pretrained releases, read from releases.json."""

import json
from dataclasses import replace

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


def test_each_release_names_what_the_app_needs_to_use_it():
    from superpos_core import lm

    for release in sae.PRETRAINED_RELEASES.values():
        assert release.model in lm.CATALOGUE  # the model the tab must have chosen for the release to read it
        assert release.format in sae.FORMATS
        assert release.hook_name(release.layers[0]).startswith(f"blocks.{release.layers[0]}.")
        assert isinstance(release.prepend_bos, bool) and isinstance(release.center_writing_weights, bool)
        assert release.context_size and release.d_sae > release.d_in


def test_which_release_reads_a_model():
    assert sae.release_for_model("gpt2") is sae.GPT2_SMALL_RES_JB
    assert sae.release_for_model("smollm2-135m-offline") is None
    assert sae.release_for_model("no-such-model") is None


def test_the_catalogue_is_data_and_a_misspelt_field_is_refused(tmp_path):
    from superpos_core.sae import releases

    entry = json.loads(releases.RELEASES_FILE.read_text())["gpt2-small-res-jb"]
    (tmp_path / "ok.json").write_text(json.dumps({"copy": entry}))
    assert releases.read_releases(tmp_path / "ok.json")["copy"] == replace(sae.GPT2_SMALL_RES_JB, name="copy")
    (tmp_path / "typo.json").write_text(json.dumps({"copy": {**entry, "prepend_bso": True}}))
    with pytest.raises(ValueError, match="prepend_bso"):
        releases.read_releases(tmp_path / "typo.json")
