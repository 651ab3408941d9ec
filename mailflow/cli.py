"""The command line: the only place that prints or picks exit codes.

Exit codes: 0 done, 1 an operational error (or nothing found), 2 a configuration error.
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from mailflow.errors import ConfigError, MailflowError, StoreError

EXIT_ERROR = 1
EXIT_CONFIG = 2


def _home(ctx: click.Context) -> Path:
    home = ctx.obj["home"] if ctx.obj else None
    return Path(home or os.environ.get("MAILFLOW_HOME") or ".").resolve()


def _dump(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _config_problems(error: ConfigError) -> None:
    click.echo(f"mailflow: {len(error.problems)} problem(s) in the configuration:", err=True)
    for problem in error.problems:
        click.echo(f"  {problem}", err=True)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn the exception tree into text and exit codes."""
    try:
        yield
    except ConfigError as exc:
        _config_problems(exc)
        sys.exit(EXIT_CONFIG)
    except StoreError as exc:
        click.echo(f"mailflow: store unavailable: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except MailflowError as exc:
        click.echo(f"mailflow: {exc}", err=True)
        sys.exit(EXIT_ERROR)


def _service(ctx: click.Context) -> Any:
    if "mailflow.service" not in sys.modules:
        _import_frozen("mailflow.service")
    from mailflow.service import Service

    return Service(_home(ctx))


def _import_frozen(name: str) -> None:
    """Import ``name`` for the rest of the process, sparing it the cyclic collector.

    These modules are most of a command's start-up and live as long as the process, yet
    the collector would traverse their objects over and over while they load and again
    at exit (~40 ms together). So they load with the collector off, and everything alive
    then is frozen out of its sight (``gc.freeze``, which also keeps forked workers from
    copying those pages). Objects made afterwards are collected as usual, among them the
    store's connections, whose collection ``Store.ready_to_fork`` relies on.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        importlib.import_module(name)
        gc.freeze()
    finally:
        if enabled:
            gc.enable()


def _with_service(ctx: click.Context, action: Callable[[Any], None]) -> None:
    with _errors():
        service = _service(ctx)
        try:
            action(service)
        finally:
            service.store.close()


@click.group()
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="The instance directory (default: $MAILFLOW_HOME, else the current directory).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every message processed.")
@click.version_option(package_name="mailflow")
@click.pass_context
def main(ctx: click.Context, home: Path | None, verbose: bool) -> None:
    """mailflow: the email desk of an online secretary service."""
    ctx.ensure_object(dict)
    ctx.obj["home"] = home
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosmtpd logs every connection at INFO; the desk logs one line per message instead.
    logging.getLogger("mail.log").setLevel(logging.WARNING)


@main.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--demo", is_flag=True, help="Fill people.yaml with demo directors, members and clients."
)
@click.option("--force", is_flag=True, help="Overwrite an existing instance's files.")
@click.pass_context
def init(ctx: click.Context, directory: Path | None, demo: bool, force: bool) -> None:
    """Create an instance: mailflow.toml, rules.yaml, people.yaml, data/ and a secret."""
    # Imported here, as in check: the configuration modules are a good part of the
    # start-up, and the commands with a service load them in _import_frozen.
    from mailflow.instance import InstanceExistsError, init_instance

    target = directory or _home(ctx)
    try:
        written = init_instance(target, demo=demo, force=force)
    except InstanceExistsError as exc:
        click.echo(f"mailflow: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"instance ready in {target}; start it with: mailflow --home {target} run")


@main.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate mailflow.toml, people.yaml, rules.yaml and templates; exit 2 on any problem."""
    from mailflow.errors import Problem
    from mailflow.instance import load_config, template_cache
    from mailflow.render import Renderer

    home = _home(ctx)
    with _errors():
        config = load_config(home)
        overrides = home / "templates"
        # Compiling every template to check it also fills the cache the daemon loads from.
        renderer = Renderer.default(
            extra_dirs=(overrides,) if overrides.is_dir() else (),
            bytecode_cache=template_cache(config.settings.template_cache_dir),
        )
        broken = renderer.check()
        if broken:
            raise ConfigError(
                [
                    Problem(
                        "templates",
                        None,
                        name,
                        "cannot be rendered",
                        "fix the Jinja syntax, or add what the template uses"
                        " (templates/CONTEXT.md; the default templates show each macro)",
                    )
                    for name in broken
                ]
            )
    directory = config.directory
    click.echo(
        f"ok: {home}: {len(directory.directors)} directors, {len(directory.members)} "
        f"members, {len(directory.clients)} clients, {len(config.rules.routes)} routes"
    )


@main.command()
@click.option("--once", is_flag=True, help="Process what is waiting, send the outbox, and exit.")
@click.pass_context
def run(ctx: click.Context, once: bool) -> None:
    """Run the daemon: SMTP/LMTP listener, inbox processing and the outbox sender."""

    def action(service: Any) -> None:
        if once:
            report = service.run_once(drain_mailboxes=True)
            click.echo(
                f"processed {len(report.processed)} message(s); sent "
                f"{report.outbox.sent}, retrying {report.outbox.retried}, "
                f"failed {report.outbox.failed}"
            )
            for name, error in report.failed_mailboxes.items():
                click.echo(f"mailflow: mailbox {name}: {error}", err=True)
            if report.failed_mailboxes:
                sys.exit(EXIT_ERROR)
        else:
            service.run()

    if not once:
        logging.getLogger().setLevel(logging.INFO)
    _with_service(ctx, action)


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[str, ...]) -> None:
    """Accept and process .eml files, mboxes or Maildirs (- reads stdin) as if received."""

    def action(service: Any) -> None:
        accepted = service.ingest(paths, stdin=sys.stdin.buffer)
        duplicates = sum(1 for item in accepted if item.duplicate)
        click.echo(
            f"accepted {len(accepted) - duplicates} message(s), {duplicates} duplicate(s) ignored"
        )

    _with_service(ctx, action)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the trace as JSON.")
@click.pass_context
def explain(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Dry run: parse, classify, identify, route and plan one mail; change nothing."""
    from mailflow.explain import explain_mail, readable

    def action(service: Any) -> None:
        trace = explain_mail(service.desk, file.read_bytes())
        if as_json:
            _dump(trace)
        else:
            click.echo("\n".join(readable(trace)))

    _with_service(ctx, action)


@main.group()
def rules() -> None:
    """rules.yaml: check a change against saved mail before it goes live."""


@rules.command("test")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows.")
@click.pass_context
def rules_test(ctx: click.Context, directory: Path, as_json: bool) -> None:
    """Route every .eml in DIRECTORY and print where each would go; exit 1 if any fails."""
    from mailflow.explain import route_row

    def action(service: Any) -> None:
        files = sorted(directory.glob("*.eml"))
        rows = [route_row(service.desk, path.name, path.read_bytes()) for path in files]
        if as_json:
            _dump(rows)
        else:
            _print_route_table(rows)
        if not rows or not all(row["ok"] for row in rows):
            sys.exit(EXIT_ERROR)

    _with_service(ctx, action)


def _print_route_table(rows: list[dict[str, Any]]) -> None:
    columns = ("file", "sender", "rule", "route", "member", "skills", "due")
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    click.echo("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        if not row["ok"] and "sender" not in row:
            click.echo(f"{row['file']}  FAILED: {row['error']}")
            continue
        line = "  ".join(str(row[c]).ljust(widths[c]) for c in columns)
        click.echo(line + ("" if row["ok"] else f"  FAILED: {row['error']}"))
    failed = sum(1 for row in rows if not row["ok"])
    click.echo(f"{len(rows)} file(s), {failed} failed to route")


@main.group()
def requests() -> None:
    """Requests: list them or show one."""


@requests.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def requests_list(ctx: click.Context, as_json: bool) -> None:
    """Requests with state, client, assignee and due date."""

    def action(service: Any) -> None:
        rows = service.store.list_requests()
        if as_json:
            _dump(rows)
            return
        for row in rows:
            click.echo(
                f"{row['ref']:<9} {row['state']:<12} {row['client']:<12} "
                f"{row['assignee'] or '-':<10} {row['due'] or '-':<26} {row['subject']}"
            )

    _with_service(ctx, action)


@requests.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def requests_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """One request with its events, messages and attachments."""

    def action(service: Any) -> None:
        data = service.store.show_request(ref)
        if data is None:
            click.echo(f"mailflow: no request {ref}", err=True)
            sys.exit(EXIT_ERROR)
        if as_json:
            _dump(data)
            return
        click.echo("\n".join(request_story(data)))

    _with_service(ctx, action)


def request_story(data: dict[str, Any]) -> list[str]:
    """The whole story of a request for a person: facts, hours, files, events, mail."""
    lines = [f"{data['ref']}  {data['subject']}"]
    for key in (
        "state",
        "model",
        "client",
        "director",
        "assignee",
        "due",
        "priority",
        "revision_count",
    ):
        lines.append(f"  {key:<15} {data[key] if data[key] is not None else '-'}")
    lines.append(f"  {'skills':<15} {', '.join(data['skills']) or '-'}")
    estimate = data["hours_estimate"]
    lines.append(
        f"  {'hours':<15} {data['hours_spent']:g} spent"
        + (f" of {estimate:g} estimated" if estimate is not None else "")
    )
    lines.append("  files:")
    lines += [
        f"    {f['filename']} ({f['size']} bytes, {f['content_type']})" for f in data["attachments"]
    ] or ["    -"]
    lines.append("  events:")
    for event in data["events"]:
        move = f" {event['from_state'] or '…'} → {event['to_state']}" if event["to_state"] else ""
        lines.append(f"    {event['at'][:19]}  {event['actor']:<12} {event['kind']}{move}")
        lines += [
            f"        {key}: {_short(value)}"
            for key, value in event["detail"].items()
            if value not in (None, "", [], {})
        ]
    lines.append("  decision:")
    decision = data["decision"]
    lines.append(
        f"    rule {decision.get('rule')} → {decision.get('route')}, suggested "
        f"{decision.get('suggested_member') or '-'}"
    )
    lines += [f"      {reason}" for reason in decision.get("reasons", [])]
    lines.append("  messages:")
    lines += [
        f"    {m['at'][:19]}  {m['direction']:<3} {m['message_id']}" for m in data["messages"]
    ]
    return lines


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= 100 else text[:97] + "…"


@main.command()
@click.option(
    "--at",
    "at",
    metavar="TIME",
    help="Run as of this time (ISO 8601, e.g. 2026-11-27T09:00+09:00); default now.",
)
@click.pass_context
def tick(ctx: click.Context, at: str | None) -> None:
    """Run scheduled work: reminders, overdue notices, estimate nudges, daily digests."""

    def action(service: Any) -> None:
        moment = _moment(at, service)
        ran = service.scheduler.tick(moment)
        report = service.sender.flush()
        click.echo(f"ran {len(ran)} scheduled item(s); sent {report.sent}")
        for key in ran:
            click.echo(f"  {key}")

    _with_service(ctx, action)


def _moment(at: str | None, service: Any) -> datetime | None:
    if at is None:
        return None
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        click.echo(
            f"mailflow: --at {at!r} is not a time; write e.g. 2026-11-27T09:00+09:00", err=True
        )
        sys.exit(EXIT_CONFIG)
    # A time without a zone is read in the desk's time zone.
    return moment if moment.tzinfo else moment.replace(tzinfo=service.config.settings.tz)


@main.command()
@click.option(
    "--preview",
    "email",
    required=True,
    metavar="EMAIL",
    help="Whose digest to print (a director, member or client contact).",
)
@click.option("--at", "at", metavar="TIME", help="As of this time (ISO 8601); default now.")
@click.pass_context
def digest(ctx: click.Context, email: str, at: str | None) -> None:
    """Print the daily digest a person would get (nothing is sent)."""

    def action(service: Any) -> None:
        rendered = service.scheduler.digest_preview(email, _moment(at, service))
        if rendered is None:
            click.echo(f"mailflow: no digest for {email} (unknown, or nothing to report)", err=True)
            sys.exit(EXIT_ERROR)
        click.echo(f"Subject: {rendered.subject}\n\n{rendered.text}")

    _with_service(ctx, action)


@main.command()
def demo() -> None:
    """Play a scripted conversation of both service models on a temporary instance."""
    from mailflow.demo import run_demo

    with _errors():
        closed = run_demo(click.echo)
    if closed != 2:
        sys.exit(EXIT_ERROR)


@main.group()
def outbox() -> None:
    """Outgoing mail: list it or send what is due."""


@outbox.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def outbox_list(ctx: click.Context, as_json: bool) -> None:
    """Outgoing emails with kind, recipients and state."""

    def action(service: Any) -> None:
        rows = service.store.list_outbox()
        if as_json:
            _dump(rows)
            return
        for row in rows:
            click.echo(
                f"{row['id']:>5} {row['state']:<8} {row['kind']:<14} "
                f"{','.join(row['to']):<30} {row['subject']}"
            )

    _with_service(ctx, action)


@outbox.command("flush")
@click.pass_context
def outbox_flush(ctx: click.Context) -> None:
    """Send what is due now."""

    def action(service: Any) -> None:
        report = service.sender.flush()
        click.echo(f"sent {report.sent}, retrying {report.retried}, failed {report.failed}")

    _with_service(ctx, action)


@main.group()
def quarantine() -> None:
    """Messages that could not be processed, or are kept for a person to look at."""


@quarantine.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def quarantine_list(ctx: click.Context, as_json: bool) -> None:
    """Quarantined and held messages with the reason."""

    def action(service: Any) -> None:
        rows = service.store.list_quarantine()
        if as_json:
            _dump(rows)
            return
        for row in rows:
            click.echo(
                f"{row['id']:>5} {row['state']:<11} {row['sender'] or '-':<30} {row['reason']}"
            )

    _with_service(ctx, action)


@quarantine.command("show")
@click.argument("inbox_id", type=int)
@click.option("--raw", is_flag=True, help="Print the raw message bytes.")
@click.pass_context
def quarantine_show(ctx: click.Context, inbox_id: int, raw: bool) -> None:
    """One held or quarantined message: its reason and facts (or its raw bytes)."""

    def action(service: Any) -> None:
        data = service.store.show_inbox(inbox_id)
        if data is None:
            click.echo(f"mailflow: no inbox item {inbox_id}", err=True)
            sys.exit(EXIT_ERROR)
        if raw:
            sys.stdout.buffer.write(service.store.raw.get(data["sha256"]))
            return
        _dump(data)

    _with_service(ctx, action)


@quarantine.command("replay")
@click.argument("inbox_ids", type=int, nargs=-1, required=True)
@click.pass_context
def quarantine_replay(ctx: click.Context, inbox_ids: tuple[int, ...]) -> None:
    """Process quarantined or held messages again (after fixing the cause)."""

    def action(service: Any) -> None:
        missing = [i for i in inbox_ids if not service.store.replay(i)]
        results = service.desk.process_pending()
        for result in results:
            click.echo(f"{result.inbox_id}: {result.state} {result.ref or ''} {result.note}")
        if missing:
            click.echo(f"mailflow: not in quarantine: {', '.join(map(str, missing))}", err=True)
            sys.exit(EXIT_ERROR)

    _with_service(ctx, action)
