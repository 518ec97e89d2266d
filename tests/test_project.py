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
    for pin in ("torch==2.14.1", "torchvision==0.29.1", "gradio==6.31.", "transformers==", "huggingface-hub==", "numpy==", "matplotlib==", "seaborn==", "safetensors=="):
        assert pin in pins, pin
