from __future__ import annotations

import pytest
from fastapi import FastAPI

from keel.platform.resources import Resources


@pytest.fixture
def resources(app: FastAPI) -> Resources:
    resources: Resources = app.state.resources
    return resources
