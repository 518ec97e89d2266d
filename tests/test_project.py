"""The README's promises about the project itself."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_quick_start_has_exactly_two_commands():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert commands[0].endswith("python app.py")
    assert commands[1].endswith("python -m pytest")


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert quick_start_commands()[1] in ci.splitlines()


def test_requirements_pin_the_stack():
    pins = (ROOT / "requirements.txt").read_text()
    for pin in (
        "torch==2.14.1",
        "torchvision==0.29.1",
        "gradio==6.31.",
        "transformers==",
        "huggingface-hub==",
        "numpy==",
        "matplotlib==",
        "seaborn==",
        "safetensors==",
    ):
        assert pin in pins, pin


def space_front_matter() -> dict:
    import yaml

    readme = (ROOT / "README.md").read_text()
    assert readme.startswith("---\n"), "a Space reads its settings from YAML at the very top of README.md"
    return yaml.safe_load(readme.split("---\n", 2)[1])


def test_space_front_matter_matches_the_project():
    from superpos_core import lm, sae

    space = space_front_matter()
    gradio_pin = re.search(r"^gradio==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert space["sdk"] == "gradio" and space["sdk_version"] == gradio_pin  # the Space runs the gradio we test
    assert (ROOT / space["app_file"]).is_file() and space["python_version"] == "3.11"
    assert len(space["short_description"]) <= 60 and space["suggested_hardware"] == "cpu-basic"
    assert space["license"] == "mit" and "MIT License" in (ROOT / "LICENSE").read_text()
    hub_models = {entry.repo_id for entry in lm.CATALOGUE.values() if entry.source == "hub"}
    assert hub_models | {sae.GPT2_SMALL_RES_JB.repo_id} == set(space["models"])
    preload = dict(line.split(" ", 1) for line in space["preload_from_hub"])
    assert "model.safetensors" in preload[lm.CATALOGUE[lm.DEFAULT].repo_id].split(",")
    # The SAE for the layer the tab opens on (the middle of GPT-2 small's 13 hidden states), in the files the loader reads.
    folder = sae.GPT2_SMALL_RES_JB.subfolder(13 // 2)
    assert set(preload[sae.GPT2_SMALL_RES_JB.repo_id].split(",")) == {
        f"{folder}/{sae.CFG_FILENAME}",
        f"{folder}/{sae.WEIGHTS_FILENAME}",
    }


def test_the_app_imports_nothing_that_requirements_txt_does_not_install():
    # A Space installs requirements.txt and runs app_file, nothing more.
    import ast
    import importlib.metadata
    import sys

    names = {
        re.split(r"[=<>\[ ]", line, maxsplit=1)[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    providers = importlib.metadata.packages_distributions()
    imported = set()
    for path in [ROOT / "app.py", *(ROOT / "demos").glob("*.py"), *(ROOT / "superpos_core").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    # spaces is imported only on a ZeroGPU Space (demos.common.on_gpu), whose image has it installed.
    third_party = imported - set(sys.stdlib_module_names) - {"app", "demos", "superpos_core", "__future__", "spaces"}
    assert {"torch", "gradio", "transformers"} <= third_party
    for module in third_party:
        assert {d.lower().replace("_", "-") for d in providers.get(module, [])} & names, (
            f"{module} is imported but not in requirements.txt"
        )


def test_every_e2e_module_is_left_out_of_the_quick_run():
    """Each file of tests/e2e serves the app, so each is marked slow: a new one that is not fails here, not in the quick run's time."""
    unmarked = [
        path.name
        for path in sorted((ROOT / "tests" / "e2e").glob("test_*.py"))
        if not re.search(r"^pytestmark = pytest\.mark\.slow\b", path.read_text(), re.M)
    ]
    assert unmarked == []
    assert "slow:" in (ROOT / "pytest.ini").read_text() and "--strict-markers" in (ROOT / "pytest.ini").read_text()


def test_the_code_is_formatted_and_linted_by_ruff():
    """One formatter and linter for the whole repo (ruff.toml): style is never a review topic, and CI says so."""
    import subprocess
    import sys

    for command in (["check", "."], ["format", "--check", "."]):
        done = subprocess.run([sys.executable, "-m", "ruff", *command], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, f"ruff {' '.join(command)}:\n{done.stdout}{done.stderr}"


def test_the_packages_ranges_accept_the_pinned_versions():
    """pyproject.toml's dependencies are the requirements.txt's, as ranges that each hold the pin CI tests."""
    import tomllib

    from packaging.requirements import Requirement

    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            requirement = Requirement(line)
            pins[requirement.name.lower()] = requirement.specifier
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ranges = {(r := Requirement(line)).name.lower(): r.specifier for line in project["dependencies"]}
    assert set(ranges) == set(pins)
    for name, specifier in pins.items():
        pinned = [s.version for s in specifier if s.operator == "=="]
        for version in pinned:
            assert ranges[name].contains(version), f"{name}: {ranges[name]} refuses the pinned {version}"
        assert "==" not in str(ranges[name]), f"{name} is pinned in pyproject.toml: a Colab's own version is refused"
    assert project["scripts"] == {"superpos": "superpos:main"}
