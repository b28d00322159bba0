"""``chatroom announce``: an operator announcement through the local control socket."""

from __future__ import annotations

import click

from chatroom.commands.options import port_option
from chatroom.control import ControlError, request


@click.command()
@click.argument("text", nargs=-1, required=True)
@port_option()
def announce(text: tuple[str, ...], port: int) -> None:
    """Broadcast TEXT to everyone, in every room, through the server on PORT
    (a node of a cluster: to the whole cluster).

    Works only on the server's machine, as the user running it.
    """
    line = " ".join(text).strip()
    if not line:
        raise click.UsageError("the announcement is empty")
    try:
        answer = request(port, "ANNOUNCE " + line)
    except ControlError as exc:
        raise click.ClickException(str(exc)) from exc
    verb, _, rest = answer.partition(" ")
    if verb != "OK":
        raise click.ClickException(f"the server refused: {rest or answer}")
    click.echo(f"announced to {rest} user(s)")
