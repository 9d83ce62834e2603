"""Settings and the command line: clear one-line errors, exit 2, no secret ever printed."""

from __future__ import annotations

import os
import subprocess

import pytest

from indexer import __version__
from indexer.config import load_settings, redact_url
from indexer.errors import ConfigError
from tests.helpers.chain import INDEXER

SECRET = "s3cr3t-pw"


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUDIFI_")}
    return subprocess.run(
        [*INDEXER, *args], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_help_lists_the_commands_the_settings_and_the_exit_codes() -> None:
    result = _cli("--help")
    assert result.returncode == 0
    commands = ("run", "backfill", "audit", "migrate", "status", "rewind", "verify")
    for command in (*commands, "refresh-views", "forget-chain"):
        assert command in result.stdout
    text = " ".join(result.stdout.split())
    assert "AUDIFI_* environment variables" in text
    assert "2 usage or configuration" in text


def test_version_prints_the_version_and_exits_0() -> None:
    result = _cli("--version")
    assert (result.returncode, result.stdout) == (0, f"audifi-indexer {__version__}\n")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AUDIFI_DB_POOL_MIN", "many"),
        ("AUDIFI_DB_POOL_MAX", "1"),
        ("AUDIFI_DB_POOL_MODE", "statement"),  # PgBouncer's third mode: not supported
        ("AUDIFI_POLL_INTERVAL", "-1"),
        ("AUDIFI_FACTORY_ADDRESS", "0x1234"),
        ("AUDIFI_RPC_URL", "ftp://node"),
        ("AUDIFI_DATABASE_URL", f"mysql://user:{SECRET}@host/db"),
        ("AUDIFI_LOG_FORMAT", "xml"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(variable: str, value: str) -> None:
    result = _cli("status", **{variable: value})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Value error" not in lines[0]  # pydantic's prefix says nothing to an operator
    assert SECRET not in result.stderr + result.stdout


def test_pool_bounds_are_checked_together() -> None:
    with pytest.raises(ConfigError, match="AUDIFI_DB_POOL_MIN"):
        load_settings(db_pool_min=5, db_pool_max=3)


def test_secrets_stay_out_of_reprs_and_redacted_urls() -> None:
    settings = load_settings(database_url=f"postgresql://indexer:{SECRET}@db:5432/audifi")
    assert SECRET not in repr(settings)
    assert SECRET not in redact_url(settings.database_dsn())
    assert redact_url("postgresql://u:p@h/d") == "postgresql://u:***@h/d"


def test_unreachable_database_for_a_one_shot_command_is_a_clear_error() -> None:
    result = _cli(
        "status",
        AUDIFI_DATABASE_URL=f"postgresql://u:{SECRET}@127.0.0.1:1/db",
        AUDIFI_FACTORY_ADDRESS="0x" + "11" * 20,
    )
    assert result.returncode == 1
    assert "PostgreSQL" in result.stderr
    assert SECRET not in result.stderr
