"""``chatroom serve``: parse options, open storage, run the socket loop."""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from typing import TYPE_CHECKING

import click

from chatroom import control
from chatroom.commands.options import db_option, host_option, port_option
from chatroom.ratelimit import Rate
from chatroom.registry import REGISTRY_KINDS, make_registry
from chatroom.server import DEFAULT_LOGIN_RATE, Hub, ServerConfig
from chatroom.server.console_log import SUMMARY_EVERY, ConsoleLog
from chatroom.server.directory import Claims
from chatroom.server.loop import Server, bind_udp, console_stream, new_token

if TYPE_CHECKING:
    from chatroom.cluster.assemble import Cluster


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
@port_option()
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
    "--pipeline/--no-pipeline",
    default=True,
    show_default=True,
    help="Commit each batch on a second thread while the next one is handled "
    "(what is shown still waits for its commit).",
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
    pipeline: bool,
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
    from storage.config import resolve_url
    from storage.store import EventStore, StorageError
    from storage.writer_lock import WriterLock

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="chatroom: %(levelname)s %(message)s",
    )
    url = resolve_url(db)
    if cluster_url is not None:
        try:
            from chatroom.cluster.assemble import check_url
        except ImportError as exc:
            raise click.ClickException(
                f"a cluster needs the cluster extra (Python module {exc.name!r} is not "
                "installed): pip install 'chatroom[cluster]'"
            ) from exc
        problem = check_url(cluster_url)
        if problem is None and not url.startswith("postgresql"):
            problem = (
                "a cluster's nodes share a PostgreSQL database: give --db postgresql+psycopg://..."
            )
        if problem is not None:
            raise click.UsageError(problem)
    try:
        store = EventStore.open(url, create=True)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc
    lock: WriterLock | None = None
    cluster: Cluster | None = None
    try:
        try:
            sock = bind_udp(host, port)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise click.ClickException(f"cannot listen on udp://{host}:{port}: {reason}") from exc
        bound_host, bound_port = sock.getsockname()[:2]
        try:
            # Before the events are read: no other server may write after that.
            owner = f"pid {os.getpid()}, udp://{bound_host}:{bound_port}"
            lock = WriterLock.claim(url, owner, shared=cluster_url is not None)
        except StorageError as exc:
            sock.close()
            raise click.ClickException(str(exc)) from exc
        config = ServerConfig(
            lang=lang,  # type: ignore[arg-type]
            classic=classic,  # type: ignore[arg-type]
            idle_timeout=idle_timeout,
            rate=rate_limit,
            login_rate=DEFAULT_LOGIN_RATE if rate_limit is not None else None,
            max_sessions_per_ip=max_sessions_per_ip,
        )

        def new_hub(claims: Claims | None = None) -> Hub:
            return Hub(
                lambda: make_registry(registry),
                new_token,
                config,
                last_id=store.last_id(),
                recent=store.recent(config.ring_size),
                heads=store.room_heads(),
                claims=claims,
            )

        if cluster_url is None:
            hub = new_hub()
        else:
            from chatroom.cluster.assemble import Cluster, ClusterError

            try:
                cluster = Cluster.join(
                    store,
                    cluster_url,
                    cluster_name,
                    f"{bound_host}:{bound_port}",
                    idle_timeout,
                    new_hub,
                    time.monotonic(),
                )
            except ClusterError as exc:
                sock.close()
                raise click.ClickException(str(exc)) from exc
            hub = cluster.hub
        try:
            ctl = control.listen(server_port(sock))
        except (OSError, control.ControlError) as exc:
            raise click.ClickException(f"cannot open the control socket: {exc}") from exc
        server = Server(
            hub,
            sock,
            store,
            storage_errors=(StorageError,),
            lock_wait=store.set_lock_wait,
            send_mode=send_mode,  # type: ignore[arg-type]
            pipeline=pipeline,
            console=console_stream(),
            control=ctl,
            database=_display(url),
            database_bytes=store.size_bytes,
            activity=None
            if quiet
            else ConsoleLog(sys.stdout, hub.online, time.monotonic(), every=summary_every),
            commits=None if cluster is None else cluster.node,
        )
        if cluster is not None and server.activity is not None:
            # Joins, leaves and timeouts of this node's users, once stored.
            cluster.node.on_commit = server.activity.committed
        server.install_signal_handlers()
        click.echo(
            f"chatroom {_version()}: listening on udp://{bound_host}:{bound_port} "
            f"(registry {registry}, classic {classic}, sends {server.sender.name}, "
            f"database {_display(url)}"
            + ("" if cluster is None else f", cluster {cluster_name} via {cluster_url}")
            + ")"
        )
        if server.console is not None:
            click.echo("Type a line and press Enter to broadcast an announcement; Ctrl-C stops.")
        sys.stdout.flush()
        with sock, ctl:
            try:
                server.serve_forever()
            finally:
                control.control_path(bound_port).unlink(missing_ok=True)
        click.echo("chatroom: stopped")
    finally:
        if cluster is not None:
            cluster.close()
        if lock is not None:
            lock.release()
        store.close()


def server_port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def _display(url: str) -> str:
    return url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url


def _version() -> str:
    from chatroom import __version__

    return __version__
