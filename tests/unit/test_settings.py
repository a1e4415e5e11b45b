"""The settings registry is the single source for the file, env vars, --help and docs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dicomhaven.cli import main
from dicomhaven.errors import ConfigError
from dicomhaven.settings import (
    LogFormat,
    Settings,
    load_settings,
    registry,
    render_markdown,
    render_settings_file,
)

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_without_a_site() -> None:
    settings = load_settings(None, environ={})
    assert settings == Settings()
    assert settings.workers == 1 and settings.intake_fsync is True


def test_file_then_environment_precedence(tmp_path: Path) -> None:
    (tmp_path / "dicomhaven.yaml").write_text("workers: 3\nlog_format: text\n")
    assert load_settings(tmp_path, environ={}).workers == 3
    settings = load_settings(tmp_path, environ={"DICOMHAVEN_WORKERS": "5"})
    assert settings.workers == 5
    assert settings.log_format is LogFormat.TEXT


def test_unknown_key_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "dicomhaven.yaml").write_text("workers: 2\n\nwokers: 3\n")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, environ={})
    message = str(info.value)
    assert f"{tmp_path / 'dicomhaven.yaml'}:3" in message
    assert "unknown setting 'wokers'" in message and "workers" in message


def test_bad_value_names_file_line_and_expectation(tmp_path: Path) -> None:
    (tmp_path / "dicomhaven.yaml").write_text("log_level: INFO\nworkers: many\n")
    with pytest.raises(ConfigError, match=r"dicomhaven.yaml:2: setting 'workers'.*integer"):
        load_settings(tmp_path, environ={})


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="environment variable DICOMHAVEN_WORKERS"):
        load_settings(None, environ={"DICOMHAVEN_WORKERS": "0"})


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "dicomhaven.yaml").write_text("workers: 2\nlog_level: [INFO\n")
    with pytest.raises(ConfigError, match=r"dicomhaven.yaml:\d+: not valid YAML"):
        load_settings(tmp_path, environ={})


def test_written_settings_file_round_trips_to_defaults(tmp_path: Path) -> None:
    (tmp_path / "dicomhaven.yaml").write_text(render_settings_file())
    assert load_settings(tmp_path, environ={}) == Settings()
    text = render_settings_file()
    for info in registry():
        assert f"\n{info.name}:" in text


def test_docs_page_is_generated_from_the_registry() -> None:
    page = ROOT / "docs" / "settings.md"
    assert page.read_text() == render_markdown(), (
        "docs/settings.md is out of date: run 'dicomhaven settings --markdown > docs/settings.md'"
    )
    for info in registry():
        assert f"`{info.env_var}`" in page.read_text()


def test_settings_command_lists_every_setting_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["settings", "--site", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == [info.name for info in registry()]
    assert all(row["help"] for row in rows)
