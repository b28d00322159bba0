"""``chatroom join``: parse options, run the forking client, map errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from chatroom.commands.options import host_option, port_option

if TYPE_CHECKING:
    from chatroom.client.servers import Server


def _room(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``--room``: a room name (``dev`` means ``#dev``: an unquoted ``#`` starts a
    comment in the shell)."""
    from chatroom import protocol as p

    raw = value if value.startswith(p.ROOM_PREFIX) else p.ROOM_PREFIX + value
    room, why = p.check_room(raw)
    if why is not None:
        raise click.BadParameter(f"{value!r} is not a room name: {p.ROOM_RULE}")
    return room


def _servers(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[Server, ...]:
    """``--server HOST:PORT`` (repeatable): each one parsed, or a usage error
    that says what is wrong with it."""
    from chatroom.client.servers import Server

    servers = []
    for value in values:
        try:
            servers.append(Server.parse(value))
        except ValueError as exc:
            raise click.BadParameter(f"{value!r}: {exc}") from exc
    return tuple(servers)


@click.command()
@click.argument("name", required=False)
@host_option()
@port_option()
@click.option(
    "--server",
    "servers",
    multiple=True,
    metavar="HOST:PORT",
    callback=_servers,
    help="A server of the chat; repeat it for the nodes of one chat (see above). "
    "IPv6 in brackets: [::1]:8888. Instead of --host/--port.",
)
@click.option(
    "--history",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    metavar="N",
    help="Replay the last N events on joining (0: none).",
)
@click.option(
    "--lang",
    type=click.Choice(["en", "zh"]),
    default=None,
    help="Language of the client's notices [default: from LC_ALL/LC_MESSAGES/LANG].",
)
@click.option("--no-color", is_flag=True, help="No colours (also NO_COLOR=1 or TERM=dumb).")
@click.option(
    "--room",
    default="#lobby",
    show_default=True,
    metavar="'#ROOM'",
    callback=_room,
    help="Start in this room (created if new) and replay its history.",
)
@click.option(
    "--give-up-after",
    type=click.FloatRange(min=0.5),
    default=60.0,
    hidden=True,  # for tests: a minute is long to wait
    metavar="SECONDS",
)
def join(
    name: str | None,
    host: str,
    port: int,
    servers: tuple[Server, ...],
    history: int,
    lang: str | None,
    no_color: bool,
    room: str,
    give_up_after: float,
) -> None:
    """Join the chat as NAME (asked for when not given).

    \b
    The server is --host/--port (127.0.0.1:8888 by default), or each
    --server HOST:PORT in turn: the first is tried first, and when the one
    in use stops answering the client moves to the next (round robin) and
    resumes the session there, nothing lost or repeated.

    \b
    Type a line and press Enter to say it in the current room (the prompt
    shows it). Commands:
      /join #ROOM  /part [#ROOM]  /rooms  /who [#ROOM]  /msg NAME TEXT
      /reply TEXT  /history [N]  /me ACTION  /help
      /quit (or quit, Ctrl-D, Ctrl-C)
    """
    from chatroom.client.session import SessionConfig
    from chatroom.client.shell import ClientError, JoinOptions, run

    ctx = click.get_current_context()
    if servers and any(
        ctx.get_parameter_source(opt) != ParameterSource.DEFAULT for opt in ("host", "port")
    ):
        raise click.UsageError(
            "--server and --host/--port cannot be used together: "
            "give every server as --server HOST:PORT"
        )
    config = SessionConfig(give_up_after=give_up_after)
    opts = JoinOptions(
        name, host, port, history, lang, no_color, config=config, room=room, servers=servers
    )
    try:
        status = run(opts)
    except ClientError as exc:
        raise click.ClickException(str(exc)) from exc
    raise SystemExit(status)
