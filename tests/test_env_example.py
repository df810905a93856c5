"""`.env.example` documents every setting, and nothing that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

from keel.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]


def test_env_example_lists_exactly_the_settings() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*(KEEL_[A-Z0-9_]+)=", text, re.MULTILINE))
    expected = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    assert documented == expected


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [
        f"{ENV_PREFIX}{name.upper()}"
        for name in Settings.model_fields
        if f"{ENV_PREFIX}{name.upper()}" not in readme
    ]
    assert missing == []
