from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject() -> None:
    """pyproject lists packages by hand (for the recipes/ mapping); keep it in step with the tree."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "edgesr").rglob("__init__.py")
    }
    assert on_disk <= listed, (
        f"add to pyproject [tool.setuptools] packages: {sorted(on_disk - listed)}"
    )
    mapped = set(config["tool"]["setuptools"]["package-dir"])
    assert listed - on_disk <= mapped, sorted(listed - on_disk - mapped)


def test_recipes_found_from_checkout() -> None:
    from edgesr.recipe import available_recipes

    assert sorted(p.stem for p in (REPO / "recipes").glob("*.yaml")) == available_recipes()


def test_ci_runs_the_readme_test_command() -> None:
    """README's second fresh-machine command ends with the test command; CI must run it."""
    readme = (REPO / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv")]
    assert len(commands) >= 2, "README must open with the install+run and install+test commands"
    test_command = commands[1].split("&&")[-1].strip()
    assert test_command.startswith("python -m pytest")
    assert test_command in (REPO / ".ci" / "run").read_text()
