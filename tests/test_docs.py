"""The README's configuration reference is generated from the settings models; it must not drift."""

from __future__ import annotations

from pathlib import Path

from collector.settings_reference import BEGIN, END, reference

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_configuration_reference_matches_the_models() -> None:
    text = README.read_text()
    section = text[text.index(BEGIN): text.index(END) + len(END)]
    assert section == reference(), "run `make docs` to regenerate the configuration reference"


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text()
    assert text.index("make demo") < text.index("make test") < text.index("## The local stack")
