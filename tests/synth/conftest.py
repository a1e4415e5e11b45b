"""One small synthetic site, generated once per test session and shared read-only."""

from __future__ import annotations

import pytest

from tests.synth.generated import GeneratedSite, generate


@pytest.fixture(scope="session")
def synth_site(tmp_path_factory: pytest.TempPathFactory) -> GeneratedSite:
    return generate(tmp_path_factory.mktemp("synth-site"))
