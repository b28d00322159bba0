"""``chatroom serve``: parse the options; chatroom/serving.py does the rest."""

from __future__ import annotations

import logging

import click

from chatroom.commands.options import db_option, host_option, port_option
from chatroom.ratelimit import Rate
from chatroom.registry import REGISTRY_KINDS
from chatroom.server import DEFAULT_LOGIN_RATE, ServerConfig
from chatroom.server.commits import COMMIT_MODES
from chatroom.server.console_log import SUMMARY_EVERY
from chatroom.server.sendmany import AUTO_THREADS, MAX_THREADS


class RateType(click.ParamType["Rate | None", object]):
    """``BURST/PER_SECOND`` or ``off``; a bad value is a usage error."""

    name = "rate"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> Rate | None:
        if value is None or isinstance(value, Rate):
            return value
        try:
            return Rate.parse(str(value))
        except ValueError as exc:
            self.fail(f"{value!r}: {exc}", param, ctx)


@click.command()
@host_option()
@port_option(listen=True)
@click.option(
    "--registry",
    type=click.Choice(REGISTRY_KINDS),
    default="indexed",
    show_default=True,
    help="User registry implementation (see docs/benchmarks.md).",
)
@click.option(
    "--lang",
    type=click.Choice(["en", "zh"]),
    default="en",
    show_default=True,
    help="Language of the classic dialect's notices.",
)
@click.option(
    "--classic",
    type=click.Choice(["loopback", "any", "off"]),
    default="loopback",
    show_default=True,
    help="Serve the spoofable classic L/C/Q dialect to loopback peers only, to any, or off.",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0.5),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Evict a v2 client silent for this long (announced as timed out).",
)
@click.option(
    "--rate-limit",
    "rate_limit",
    type=RateType(),
    default="5/1",
    show_default=True,
    metavar="BURST/PER_SECOND|off",
    help="Messages a user may send at once / per second after that; 'off' also lifts "
    "the per-address login limit (for benchmarks).",
)
@click.option(
    "--max-sessions-per-ip",
    type=click.IntRange(min=0),
    default=16,
    show_default=True,
    help="Most v2 sessions from one IP address (0: unlimited).",
)
@click.option(
    "--send-mode",
    type=click.Choice(["auto", "sendmmsg", "sendto"]),
    default="auto",
    show_default=True,
    help="How datagrams leave: batched with sendmmsg(2) (auto: where the system has it), "
    "or one sendto per datagram (for comparison).",
)
@click.option(
    "--send-threads",
    type=click.IntRange(min=1, max=MAX_THREADS),
    metavar="N",
    help="Threads that send a large fan-out at once, each on its own core, with "
    f"sendmmsg  [default: one per core, at most {AUTO_THREADS}].",
)
@click.option(
    "--commit",
    type=click.Choice(COMMIT_MODES),
    default=COMMIT_MODES[0],
    show_default=True,
    help="Where batches are committed: in a writer process or on a second thread "
    "while the next batch is handled, or inline in the loop (what is shown always "
    "waits for its commit).",
)
@db_option
@click.option(
    "--cluster",
    "cluster_url",
    metavar="URL",
    help="Run as one node of a cluster through this Redis (redis://host:port); needs a "
    "PostgreSQL --db shared by every node (docs/cluster.md).",
)
@click.option(
    "--cluster-name",
    default="chatroom",
    show_default=True,
    metavar="NAME",
    help="Which cluster on that Redis (several may share one).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debugging detail to stderr.")
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="Do not print joins, leaves, timeouts and the summary a minute on stdout.",
)
@click.option(
    "--summary-every",
    type=click.FloatRange(min=0.1),
    default=SUMMARY_EVERY,
    hidden=True,  # for tests: a minute is long to wait
    metavar="SECONDS",
)
def serve(
    host: str,
    port: int,
    registry: str,
    lang: str,
    classic: str,
    idle_timeout: float,
    rate_limit: Rate | None,
    max_sessions_per_ip: int,
    send_mode: str,
    send_threads: int | None,
    commit: str,
    db: str | None,
    cluster_url: str | None,
    cluster_name: str,
    verbose: bool,
    quiet: bool,
    summary_every: float,
) -> None:
    """Run the chat server.

    It prints a line for each join, leave and timeout (with how many are
    online) and a summary a minute (messages per second, users online); -q
    turns that off. Lines typed at the server's terminal are broadcast as
    announcements, and so is `chatroom announce TEXT --port PORT` from another
    terminal of the same user. Ctrl-C (or SIGTERM) tells everyone and stops
    cleanly.
    """
    from chatroom.serving import ServeError, ServeOptions, UsageProblem
    from chatroom.serving import serve as run

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="chatroom: %(levelname)s %(message)s",
    )
    config = ServerConfig(
        lang=lang,  # type: ignore[arg-type]
        classic=classic,  # type: ignore[arg-type]
        idle_timeout=idle_timeout,
        rate=rate_limit,
        login_rate=DEFAULT_LOGIN_RATE if rate_limit is not None else None,
        max_sessions_per_ip=max_sessions_per_ip,
    )
    opts = ServeOptions(
        host, port, registry, config, send_mode, commit,  # type: ignore[arg-type]
        db, cluster_url, cluster_name, quiet, summary_every, send_threads,
    )  # fmt: skip
    try:
        run(opts, click.echo)
    except UsageProblem as exc:
        raise click.UsageError(str(exc)) from exc
    except ServeError as exc:
        raise click.ClickException(str(exc)) from exc
