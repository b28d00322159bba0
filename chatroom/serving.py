"""Putting a server together for ``chatroom serve``.

The order is the point: the database first (migrated; refused if newer than
this code), the UDP socket, the writer lock (before any event is read: no
other server may write after that), the core with the recent events (and, with
``--cluster``, the node that joins the others), the control socket, then the
loop. Each part is undone in reverse, whatever fails (an ExitStack). The click
command only parses options and turns a ``ServeError`` into its message.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from chatroom import __version__, control
from chatroom.registry import make_registry
from chatroom.server import Hub, ServerConfig
from chatroom.server.commits import CommitMode, EventSink
from chatroom.server.console_log import ConsoleLog
from chatroom.server.directory import Claims
from chatroom.server.loop import Server, bind_udp, console_stream, new_token
from chatroom.server.sendmany import SendMode
from storage.config import resolve_url, sqlite_file
from storage.store import EventStore, StorageError
from storage.writer import SplitWriter, WriterProcess
from storage.writer_lock import WriterLock

if TYPE_CHECKING:
    from chatroom.cluster.assemble import Cluster


T = TypeVar("T")


class ServeError(Exception):
    """Why the server cannot run: one line for the operator."""


class UsageProblem(ServeError):
    """Options that do not go together (a usage error, exit 2)."""


@dataclass(frozen=True)
class ServeOptions:
    host: str
    port: int
    registry: str
    config: ServerConfig
    send_mode: SendMode = "auto"
    commit: CommitMode = "process"
    db: str | None = None
    cluster_url: str | None = None
    cluster_name: str = "chatroom"
    quiet: bool = False
    summary_every: float = 60.0
    #: Threads that send a large batch at once (None: one per core, at most two).
    send_threads: int | None = None


#: How the banner names a database this start created: a mistyped ``--db``
#: shows at once, not as a missing history later.
NEW_DATABASE = "new database"


def serve(opts: ServeOptions, echo: Callable[[str], None]) -> None:
    """Run the server until a signal stops it; ``echo`` prints a line."""
    url = resolve_url(opts.db)
    _check_cluster(opts, url)
    with contextlib.ExitStack() as stack:
        # The socket first: a port in use (the commonest failed start) then
        # leaves no new, empty database file behind.
        try:
            sock = bind_udp(opts.host, opts.port)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ServeError(f"cannot listen on udp://{opts.host}:{opts.port}: {reason}") from exc
        stack.enter_context(sock)
        file = sqlite_file(url)
        fresh = file is not None and not file.exists()
        host, port = sock.getsockname()[:2]
        owner = f"pid {os.getpid()}, udp://{host}:{port}"
        shared = opts.cluster_url is not None
        # The lock before the database is opened (and migrated), so that a
        # writer process can be launched holding it and start up meanwhile.
        lock = _guarded(lambda: WriterLock.claim(url, owner, shared=shared))
        stack.callback(lock.release)
        writer = _launch_writer(opts, url, lock, stack)
        store = _guarded(lambda: EventStore.open(url, create=True))
        stack.callback(store.close)
        hub, cluster = _core(opts, store, f"{host}:{port}")
        if cluster is not None:
            stack.callback(cluster.close)
        try:
            ctl = control.listen(int(port))
        except (OSError, control.ControlError) as exc:
            raise ServeError(f"cannot open the control socket: {exc}") from exc
        stack.enter_context(ctl)
        stack.callback(control.control_path(int(port)).unlink, missing_ok=True)
        pipeline = _pipeline(opts.commit, store, writer) if cluster is None else None
        server = _server(opts, hub, sock, store, ctl, url, cluster, pipeline)
        server.install_signal_handlers()
        where = "" if cluster is None else f", cluster {opts.cluster_name} via {opts.cluster_url}"
        threads = server.sender.threads
        sends = server.sender.name + (f" on {threads} threads" if threads > 1 else "")
        echo(
            f"chatroom {__version__}: listening on udp://{host}:{port} (registry "
            f"{opts.registry}, classic {opts.config.classic}, sends {sends}, "
            f"{NEW_DATABASE if fresh else 'database'} {display(url)}{where})"
        )
        if server.console is not None:
            echo("Type a line and press Enter to broadcast an announcement; Ctrl-C stops.")
        sys.stdout.flush()
        server.serve_forever()
    echo("chatroom: stopped")


def _launch_writer(
    opts: ServeOptions, url: str, lock: WriterLock, stack: contextlib.ExitStack
) -> WriterProcess | None:
    """The writer process of ``--commit process`` (storage/writer.py says why),
    holding the database's lock while it lives, launched now so that its
    start overlaps the server's; None in the other modes and for a cluster's
    node (its commits go through the cluster: chatroom/cluster/node.py)."""
    if opts.commit != "process" or opts.cluster_url is not None:
        return None
    writer = WriterProcess(url, pass_fds=lock.inheritable())
    stack.callback(writer.close)
    writer.launch()
    return writer


def _pipeline(
    mode: CommitMode, store: EventStore, writer: WriterProcess | None
) -> EventSink | None:
    """What the server's commit thread writes through (``--commit``): the
    writer process, once it has the database open (before the server says it
    listens); the store on the thread itself; or nothing (inline)."""
    if mode == "inline":
        return None
    if mode == "thread":
        return store
    assert writer is not None  # --commit process: launched by _launch_writer
    _guarded(writer.start)
    return SplitWriter(store, writer)


def display(url: str) -> str:
    """A database URL as the operator gave it (an SQLite file as its path)."""
    return url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url


def _check_cluster(opts: ServeOptions, url: str) -> None:
    if opts.cluster_url is None:
        return
    try:
        from chatroom.cluster.assemble import check_url
    except ImportError as exc:
        raise ServeError(
            f"a cluster needs the cluster extra (Python module {exc.name!r} is not "
            "installed): pip install 'chatroom[cluster]'"
        ) from exc
    problem = check_url(opts.cluster_url)
    if problem is None and not url.startswith("postgresql"):
        problem = (
            "a cluster's nodes share a PostgreSQL database: give --db postgresql+psycopg://..."
        )
    if problem is not None:
        raise UsageProblem(problem)


def _guarded(open_it: Callable[[], T]) -> T:
    """``open_it()``, its storage error as the operator's message."""
    try:
        return open_it()
    except StorageError as exc:
        raise ServeError(str(exc)) from exc


def _core(opts: ServeOptions, store: EventStore, address: str) -> tuple[Hub, Cluster | None]:
    """The core, with what the database holds; in a cluster, the node too."""

    def new_hub(claims: Claims | None = None) -> Hub:
        return Hub(
            lambda: make_registry(opts.registry),
            new_token,
            opts.config,
            last_id=store.last_id(),
            recent=store.recent(opts.config.ring_size),
            heads=store.room_heads(),
            claims=claims,
        )

    if opts.cluster_url is None:
        return _guarded(new_hub), None
    from chatroom.cluster.assemble import Cluster, ClusterError

    try:
        cluster = Cluster.join(
            store,
            opts.cluster_url,
            opts.cluster_name,
            address,
            opts.config.idle_timeout,
            new_hub,
            time.monotonic(),
        )
    except ClusterError as exc:
        raise ServeError(str(exc)) from exc
    return cluster.hub, cluster


def _server(
    opts: ServeOptions,
    hub: Hub,
    sock: socket.socket,
    store: EventStore,
    ctl: socket.socket,
    url: str,
    cluster: Cluster | None,
    writer: EventSink | None,
) -> Server:
    activity = (
        None
        if opts.quiet
        else ConsoleLog(
            sys.stdout,
            hub.online,
            time.monotonic(),
            every=opts.summary_every,
            resumed=lambda: hub.stats["resumed"],
        )
    )
    server = Server(
        hub,
        sock,
        store,
        storage_errors=(StorageError,),
        lock_wait=store.set_lock_wait,
        send_mode=opts.send_mode,
        send_threads=opts.send_threads,
        pipeline=writer,
        console=console_stream(),
        control=ctl,
        database=display(url),
        database_bytes=store.size_bytes,
        activity=activity,
        commits=None if cluster is None else cluster.node,
    )
    if cluster is not None and activity is not None:
        # Joins, leaves and timeouts of this node's users, once stored.
        cluster.node.on_commit = activity.committed
    return server
