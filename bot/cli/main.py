"""The `operator` command line: chat, the intent tools, serve, history, db upgrade, rules check and
dashboard hash-password."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bot.core.roles import LOCAL_USER
from bot.settings import ConfigError, Settings, catalog_settings, load_settings
from intents import Parser

config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="OPERATOR_CONFIG",
    help="YAML config file (default: $OPERATOR_CONFIG, else the embedded defaults).",
)


def _settings(config_file: Path | None) -> Settings:
    try:
        return load_settings(config_file)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _parser(config_file: Path | None) -> Parser:
    """The parser for the intent tools, which need only the catalog keys of the config.

    A config the service would refuse (a secret in the file, an unknown role) still gives the
    catalog the live bot would use once fixed, with a warning, so tuning is never blocked.
    """
    try:
        return Parser(load_settings(config_file).catalog())
    except ConfigError as exc:
        if config_file is None:
            raise click.ClickException(str(exc)) from exc
        try:
            catalog_only = catalog_settings(config_file)
        except ConfigError:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"warning: {exc}; using only its catalog keys", err=True)
        return Parser(catalog_only.catalog())


@click.group()
@click.version_option(package_name="operator-sms", prog_name="operator", message="%(prog)s %(version)s")
def main() -> None:
    """Operator: an SMS assistant for on-call engineers."""


@main.group(invoke_without_command=True)
@config_option
@click.pass_context
def intents(ctx: click.Context, config_file: Path | None) -> None:
    """The intent pipeline: with no subcommand, a REPL that shows how each text parses."""
    if ctx.invoked_subcommand is None:
        from bot.cli.intent_tools import repl

        repl(_parser(config_file), sys.stdin, sys.stdout)


@intents.command("parse")
@config_option
@click.option("--jsonl", is_flag=True, required=True, help='Read {"user", "text"} JSON lines on stdin.')
def intents_parse(config_file: Path | None, jsonl: bool) -> None:
    """Parse JSON lines from stdin with per-user context; one output object per line on stdout."""
    from bot.cli.intent_tools import ContextualParser, parse_jsonl

    parser = ContextualParser(_parser(config_file))
    for output in parse_jsonl(parser, sys.stdin):
        sys.stdout.write(json.dumps(output, ensure_ascii=False) + "\n")
        sys.stdout.flush()


@intents.command("test")
@click.argument("files", nargs=-1, required=True)
@config_option
@click.option("--min-joint", type=click.FloatRange(0, 1), default=None, help="Fail below this joint accuracy (0-1).")
@click.option("--failures/--no-failures", default=False, help="List every failing case.")
def intents_test(files: tuple[str, ...], config_file: Path | None, min_joint: float | None, failures: bool) -> None:
    """Run case files (JSON lines, or directories of them) and print accuracy and confusion."""
    from bot.cli.intent_tools import case_paths, run_case_files

    paths = case_paths(files)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing or not paths:
        raise click.ClickException(f"no such case file: {', '.join(missing) or ' '.join(files)}")
    try:
        report = run_case_files(_parser(config_file), paths)
    except (ValueError, KeyError) as exc:
        raise click.ClickException(f"bad case file: {exc}") from exc
    click.echo(report.render(show_failures=failures))
    if min_joint is not None and report.joint_accuracy < min_joint:
        raise click.ClickException(f"joint accuracy {report.joint_accuracy:.1%} is below {min_joint:.1%}")


@main.command()
@config_option
@click.option("--user", default=None, help="The phone number to text as (default: the local user).")
def chat(config_file: Path | None, user: str | None) -> None:
    """Text the bot from the terminal, through the same path as an SMS."""
    from bot.cli.chat import run_chat

    settings = _settings(config_file)
    number = user or (next(iter(settings.users)) if settings.users else LOCAL_USER)
    try:
        run_chat(settings, number)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--dev", is_flag=True, help="Accept unsigned webhooks (only on a loopback address), to try it locally.")
def serve(config_file: Path | None, host: str, port: int, workers: int, dev: bool) -> None:
    """Run the SMS webhook (POST /sms) with uvicorn."""
    import os

    from bot.observability import setup_logging
    from bot.web.app import create_app
    from bot.web.connections import Limits
    from bot.web.serving import serve as run_server

    if config_file is not None:
        os.environ["OPERATOR_CONFIG"] = str(config_file.resolve())
    os.environ["OPERATOR_BIND_HOST"] = host
    if dev:
        os.environ["OPERATOR_DEV_MODE"] = "true"
    settings = _settings(config_file)
    if workers > 1 and settings.redis_url is None:
        raise click.ClickException(
            f"--workers {workers} needs REDIS_URL: without a shared store each worker would keep its own "
            "conversations, rate limits and repeated-webhook memory"
        )
    try:
        create_app(settings)  # fail here, once, with a clear line, rather than in every worker
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if settings.dev_mode:
        click.echo(f"Dev mode: unsigned texts accepted on {host} only; rate limit {settings.rate_burst} texts at once, "
                   f"{settings.rate_per_minute:g} a minute per number (looser than in production, for a local trial).",
                   err=True)  # fmt: skip
    setup_logging(settings.log_json, settings.log_level)  # the supervisor's own lines (workers set theirs)
    run_server(
        "bot.web.app:app_from_environment",
        host=host,
        port=port,
        workers=workers,
        limits=Limits.from_settings(settings),
        proxy_headers=False,
        server_header=False,
        log_level="warning",
        access_log=False,
    )


@main.command()
@config_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
def history(config_file: Path | None, limit: int) -> None:
    """Print the most recent messages of the audit history (numbers masked)."""
    import asyncio

    from bot.db.database import DatabaseUnavailable
    from bot.db.history import show_recent

    settings = _settings(config_file)
    try:
        asyncio.run(show_recent(settings.database_url, settings.history_path, limit, sys.stdout))
    except DatabaseUnavailable as exc:
        raise click.ClickException(str(exc)) from exc


@main.group()
def db() -> None:
    """The SQL database (audit history, alert subscriptions): its schema migrations."""


@db.command("upgrade")
@config_option
def db_upgrade(config_file: Path | None) -> None:
    """Migrate the schema to this version's head revision: before a deploy, or for a migration too long
    for start-up (every instance also upgrades when it starts; several at once are safe)."""
    from bot.db.database import DatabaseUnavailable
    from bot.db.migrate import main_upgrade

    settings = _settings(config_file)
    try:
        revision = main_upgrade(settings.database_url, settings.history_path)
    except DatabaseUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"database schema at revision {revision}")


@main.group()
def dashboard() -> None:
    """The web dashboard at /dashboard."""


@dashboard.command("hash-password")
def dashboard_hash_password() -> None:
    """Print the hash of a password for `dashboard_users` (asked twice without echo; read from stdin
    when it is not a terminal). The password itself is never stored or printed."""
    from bot.dashboard.auth import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, hash_password

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD_CHARS:
        raise click.ClickException(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise click.ClickException(f"the password must have at most {MAX_PASSWORD_CHARS} characters")
    click.echo(hash_password(password))


@main.group()
def rules() -> None:
    """The bot's own threshold rules."""


@rules.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
def rules_check(file: Path, config_file: Path | None) -> None:
    """Validate a rule file and print what each rule evaluates to now against the live Prometheus."""
    import asyncio

    from bot.alerting.rules.check import check_results, format_checks, make_evaluator
    from bot.alerting.rules.model import RuleFileError, load_rules
    from monitors.base import Kind
    from monitors.http import new_client
    from monitors.registry import BuildContext, MonitorConfigError, build_monitors

    settings = _settings(config_file)
    try:
        loaded = load_rules(file, templates=settings.metric_templates(), users=settings.users)
    except RuleFileError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)

    async def check() -> bool:
        async with new_client() as client:
            try:
                monitors = build_monitors(settings.monitors, BuildContext(client, settings.metric_templates()))
            except MonitorConfigError as exc:
                raise click.ClickException(str(exc)) from exc
            prometheus = next((m for m in monitors.for_kind(Kind.METRICS) if monitors.type_of(m) == "prometheus"), None)
            if prometheus is None:
                raise click.ClickException("no prometheus monitor is configured to check the rules against")
            checks = await check_results(loaded, make_evaluator(prometheus))
            click.echo(format_checks(checks))
            return not any(check.error for check in checks)

    if not asyncio.run(check()):
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
