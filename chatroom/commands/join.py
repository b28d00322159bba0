"""``chatroom join``: parse options, run the forking client, map errors."""

from __future__ import annotations

import click

from chatroom.commands.options import host_option, port_option


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
def join(
    name: str | None, host: str, port: int, history: int, lang: str | None, no_color: bool
) -> None:
    """Join the chat room as NAME (asked for when not given).

    \b
    Type a line and press Enter to say it. Commands:
      /who  /history [N]  /me ACTION  /help  /quit (or quit, Ctrl-D, Ctrl-C)
    """
    from chatroom.client.shell import ClientError, JoinOptions, run

    if port == 0:
        raise click.BadParameter("the server's port cannot be 0", param_hint="--port")
    try:
        status = run(JoinOptions(name, host, port, history, lang, no_color))
    except ClientError as exc:
        raise click.ClickException(str(exc)) from exc
    raise SystemExit(status)
