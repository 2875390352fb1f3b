"""space.yaml is the source of truth for the Space; README front matter must mirror it."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def readme_front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n"), "README.md must start with YAML front matter"
    block = text.split("---\n", 2)[1]
    return yaml.safe_load(block)


def test_readme_front_matter_mirrors_space_yaml():
    space = yaml.safe_load((ROOT / "space.yaml").read_text(encoding="utf-8"))
    front = readme_front_matter()
    assert front == space


def test_space_settings_match_requirements():
    space = yaml.safe_load((ROOT / "space.yaml").read_text(encoding="utf-8"))
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert space["sdk"] == "gradio"
    assert f"gradio=={space['sdk_version']}" in requirements
    assert (ROOT / space["app_file"]).is_file()
