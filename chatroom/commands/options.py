"""Options shared by several commands, as decorators so they read the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])


def _check_db(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from storage.config import db_value_problem

    problem = db_value_problem(value) if value else None
    if problem is not None:
        raise click.BadParameter(problem)
    return value


def db_option(func: F) -> F:
    """``--db``: a file path or any SQLAlchemy URL; ``CHATROOM_DB`` sets the default."""
    return click.option(
        "--db",
        "db",
        envvar="CHATROOM_DB",
        default=None,
        metavar="PATH|URL",
        callback=_check_db,
        help="Database file or SQLAlchemy URL "
        "[default: $XDG_DATA_HOME/chatroom/chatroom.db; env: CHATROOM_DB].",
    )(func)


def host_option(default: str = "127.0.0.1") -> Callable[[F], F]:
    """``--host``: the address to bind (server) or reach (client)."""

    def deco(func: F) -> F:
        return click.option("--host", default=default, show_default=True, help="Server address.")(
            func
        )

    return deco


_LISTEN_HELP = "UDP port to listen on (0: any free port)."


class PortType(click.IntRange):
    """A UDP port, refused in words a person reads ("'abc' is not a port
    number") rather than click's "is not a valid integer range"."""

    name = "port"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, str) and not value.strip().lstrip("+-").isdigit():
            self.fail(f"{value!r} is not a port number ({self.min}-{self.max})", param, ctx)
        return int(super().convert(value, param, ctx))


def port_option(default: int = 8888, *, listen: bool = False) -> Callable[[F], F]:
    """``--port``: the UDP port a server listens on (``listen``: 0 lets it pick
    a free one) or the one a client talks to (never 0)."""

    def deco(func: F) -> F:
        return click.option(
            "--port",
            type=PortType(0 if listen else 1, 65535),
            default=default,
            show_default=True,
            help=_LISTEN_HELP if listen else "The server's UDP port.",
        )(func)

    return deco
