"""The `audifi-indexer` command line: the daemon and the operator's tools.

Usage errors and invalid settings print one line and exit 2; other failures
print one line and exit 1. Tracebacks only at AUDIFI_LOG_LEVEL=debug.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, NoReturn

import typer

from indexer import __version__, logs
from indexer.config import Settings, load_settings
from indexer.errors import ConfigError, IndexerError

app = typer.Typer(
    help=(
        "Index the AudiFi contracts from an Ethereum node into PostgreSQL. Settings come "
        "from AUDIFI_* environment variables (AUDIFI_DATABASE_URL, AUDIFI_RPC_URL, "
        "AUDIFI_FACTORY_ADDRESS, ...: see the README). Exit codes: 0 ok, 1 runtime failure, "
        "2 usage or configuration, 3 differences found (verify, audit --no-heal)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"audifi-indexer {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Options that come before the command."""


migrate_app = typer.Typer(help="Apply or revert the SQL migrations in sql/migrations.")
app.add_typer(migrate_app, name="migrate")

USAGE = 2


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr (a server's multi-line message joined), then exit `code`."""
    typer.echo(f"error: {one_line(logs.redact(message))}", err=True)
    raise typer.Exit(code)


def one_line(message: str) -> str:
    return " ".join(message.split())


def settings() -> Settings:
    try:
        loaded = load_settings()
    except ConfigError as e:
        fail(str(e), USAGE)
    logs.configure(level=loaded.log_level, fmt=loaded.log_format)
    return loaded


def run_async(work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a command's coroutine; our errors become one line, not a traceback."""
    try:
        return asyncio.run(work())
    except ConfigError as e:
        fail(str(e), USAGE)
    except IndexerError as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted", 130)


FromBlock = Annotated[int, typer.Option("--from-block", min=0, help="First block.")]
ToBlock = Annotated[int, typer.Option("--to-block", min=0, help="Last block.")]


def require_range(from_block: int, to_block: int) -> None:
    if from_block > to_block:
        fail(f"--from-block {from_block} is after --to-block {to_block}", USAGE)


@app.command(short_help="The daemon: follow the chain until SIGTERM.")
def run() -> None:
    """Follow the chain from the stored checkpoint until SIGTERM/SIGINT."""
    from indexer.service import run_daemon

    loaded = settings()
    run_async(lambda: run_daemon(loaded))


@app.command(short_help="Index a block range, then audit it (idempotent).")
def backfill(
    from_block: FromBlock,
    to_block: ToBlock,
    audit: Annotated[
        bool, typer.Option("--audit/--no-audit", help="Audit the range when indexed.")
    ] = True,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            metavar="I/N",
            help="Index only shard I (from 0) of N of the range; run all N, anywhere, at once.",
        ),
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(
            "--shards",
            min=1,
            help="As --shard I/N with I from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job).",
        ),
    ] = None,
) -> None:
    """Index exactly [--from-block, --to-block], then audit it against the node's
    receipts and heal what differs; idempotent, safe beside a running daemon and beside
    the other shards of the same range."""
    import os

    from indexer.commands import run_backfill
    from indexer.shards import Shard

    require_range(from_block, to_block)
    if shard is not None and shards is not None:
        fail("give --shard I/N or --shards N, not both", USAGE)
    try:
        part = (
            Shard.parse(shard)
            if shard is not None
            else Shard.from_environment(shards, os.environ)
            if shards is not None
            else None
        )
    except ConfigError as e:
        fail(str(e), USAGE)
    loaded = settings()
    run_async(lambda: run_backfill(loaded, from_block, to_block, audit=audit, shard=part))


@app.command(short_help="Re-read committed blocks by receipts and heal what differs.")
def audit(
    from_block: FromBlock,
    to_block: ToBlock,
    heal: Annotated[
        bool, typer.Option("--heal/--no-heal", help="Fix what differs, or only report it.")
    ] = True,
) -> None:
    """Re-read the committed blocks of the range by another path than eth_getLogs (the
    node's receipts, or AUDIFI_AUDIT_RPC_URL) and compare them with the coverage ledger.
    Each block that differs is healed in one transaction, logged and announced.

    With --no-heal, exits 3 if any block differs.
    """
    from indexer.commands import run_audit
    from indexer.verify import DIFFERENCES_EXIT_CODE

    require_range(from_block, to_block)
    loaded = settings()
    if not run_async(lambda: run_audit(loaded, from_block, to_block, heal=heal)):
        raise typer.Exit(DIFFERENCES_EXIT_CODE)


@app.command(short_help="Undo everything above a block (after a too-deep reorg).")
def rewind(
    to_block: Annotated[int, typer.Option("--to-block", min=0, help="Keep blocks up to this.")],
) -> None:
    """Undo everything indexed above --to-block and move the checkpoint there."""
    from indexer.commands import run_rewind

    loaded = settings()
    run_async(lambda: run_rewind(loaded, to_block))


@app.command(short_help="Checkpoint, head, lag, contracts, counts, ranges, audit.")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Checkpoint, head, lag, tracked contracts, event counts, last reorg."""
    from indexer.commands import run_status

    loaded = settings()
    run_async(lambda: run_status(loaded, as_json=as_json))


@app.command(short_help="Compare a block range with the node (or another provider).")
def verify(
    from_block: FromBlock,
    to_block: ToBlock,
    against: Annotated[
        str | None,
        typer.Option("--against", help="Another provider's URL: compare the ledger with it."),
    ] = None,
) -> None:
    """Compare [--from-block, --to-block] with the node: block hashes, event counts per
    block, and the owners and balances of the tokens touched. With --against URL, compare
    instead what each committed block holds with that provider's answers. Read-only.

    Prints each difference and exits 3 if there are any; else one summary line, exit 0.
    """
    from indexer.verify import DIFFERENCES_EXIT_CODE, run_verify, run_verify_against

    require_range(from_block, to_block)
    if against is not None and not against.startswith(("http://", "https://")):
        fail("--against: must be an http:// or https:// URL", USAGE)
    loaded = settings()
    if against is None:
        ok = run_async(lambda: run_verify(loaded, from_block, to_block))
    else:
        ok = run_async(lambda: run_verify_against(loaded, from_block, to_block, against))
    if not ok:
        raise typer.Exit(DIFFERENCES_EXIT_CODE)


@app.command("forget-chain", short_help="Empty one chain's index (asks for --yes).")
def forget_chain(
    chain_id: Annotated[int, typer.Option("--chain-id", min=1, help="The chain to empty.")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this deletes data.")] = False,
) -> None:
    """Empty one chain's index (rows, derived state, checkpoint, identity), e.g. before
    indexing another factory. Refused while a `run` replica leads the chain."""
    from indexer.commands import run_forget_chain

    if not yes:
        fail("forget-chain deletes this chain's whole index: add --yes to confirm", USAGE)
    loaded = settings()
    run_async(lambda: run_forget_chain(loaded, chain_id))


@app.command("refresh-views", short_help="Refresh the dashboards' materialized views now.")
def refresh_views() -> None:
    """Refresh the dashboards' materialized views now (CONCURRENTLY)."""
    from indexer.commands import run_refresh_views

    loaded = settings()
    run_async(lambda: run_refresh_views(loaded))


@migrate_app.command("up")
def migrate_up(
    to: Annotated[int | None, typer.Option("--to", min=0, help="Stop at this version.")] = None,
) -> None:
    """Apply pending migrations (one transaction each, under an advisory lock)."""
    from indexer.commands import run_migrate

    loaded = settings()
    run_async(lambda: run_migrate(loaded, "up", to))


@migrate_app.command("down")
def migrate_down(
    to: Annotated[int, typer.Option("--to", min=0, help="Revert down to this version.")],
) -> None:
    """Revert migrations above --to."""
    from indexer.commands import run_migrate

    loaded = settings()
    run_async(lambda: run_migrate(loaded, "down", to))


@migrate_app.command("status")
def migrate_status() -> None:
    """List migrations and whether each is applied."""
    from indexer.commands import run_migrate

    loaded = settings()
    run_async(lambda: run_migrate(loaded, "status", None))


def main() -> None:
    """Run the CLI; a usage error (bad option value, unknown option, missing option) is
    one line and exit 2 like every other bad input, not a box of help."""
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as e:
        if len(sys.argv) <= 1 or e.format_message().startswith("Usage:"):
            typer.echo(e.format_message(), err=True)  # no arguments at all: the help
        else:
            typer.echo(f"error: {one_line(e.format_message())}", err=True)
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)
    except SystemExit as e:
        sys.exit(e.code)
    sys.exit(code if isinstance(code, int) else 0)
