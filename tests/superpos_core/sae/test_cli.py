"""``python -m superpos_core.sae``: download once, for offline use."""

from superpos_core import sae
from superpos_core.sae import pretrained
from tests.superpos_core.sae.helpers import OFFLINE, FakeHub, write_sae_folder


def test_command_line_download(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pretrained, "hf_hub_download", FakeHub(write_sae_folder(tmp_path / "snapshot")))
    assert sae.main(["--layers", "8"]) == 0
    assert "blocks.8.hook_resid_pre" in capsys.readouterr().out
    monkeypatch.setattr(pretrained, "hf_hub_download", FakeHub(error=OFFLINE))
    assert sae.main(["--layers", "8"]) == 1
    assert "not available" in capsys.readouterr().err
