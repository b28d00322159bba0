"""``chatroom join``: parse options, run the forking client, map errors."""

from __future__ import annotations

import click

from chatroom.commands.options import host_option, port_option


def _room(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``--room``: a room name (``dev`` means ``#dev``: an unquoted ``#`` starts a
    comment in the shell)."""
    from chatroom import protocol as p

    raw = value if value.startswith(p.ROOM_PREFIX) else p.ROOM_PREFIX + value
    room, why = p.check_room(raw)
    if why is not None:
        raise click.BadParameter(
            f"{value!r} is not a room name: # then 1-32 characters, no spaces or colons"
        )
    return room


@click.command()
@click.argument("name", required=False)
@host_option()
@port_option()
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
    history: int,
    lang: str | None,
    no_color: bool,
    room: str,
    give_up_after: float,
) -> None:
    """Join the chat as NAME (asked for when not given).

    \b
    Type a line and press Enter to say it in the current room (the prompt
    shows it). Commands:
      /join #ROOM  /part [#ROOM]  /rooms  /who [#ROOM]  /msg NAME TEXT
      /reply TEXT  /history [N]  /me ACTION  /help
      /quit (or quit, Ctrl-D, Ctrl-C)
    """
    from chatroom.client.session import SessionConfig
    from chatroom.client.shell import ClientError, JoinOptions, run

    if port == 0:
        raise click.BadParameter("the server's port cannot be 0", param_hint="--port")
    config = SessionConfig(give_up_after=give_up_after)
    try:
        status = run(
            JoinOptions(name, host, port, history, lang, no_color, config=config, room=room)
        )
    except ClientError as exc:
        raise click.ClickException(str(exc)) from exc
    raise SystemExit(status)
