"""The ``chatroom`` command group. Thin: each command lives in chatroom/commands/."""

from __future__ import annotations

import click

from chatroom import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chatroom")
def cli() -> None:
    """A terminal group chat over UDP, with stored history.

    \b
    Start a server:     chatroom serve
    Join it:            chatroom join alice
    Read what was said: chatroom history -n 50
    """


def _register() -> None:
    # Imported here so that `chatroom --help` stays one import away from each command.
    from chatroom.commands.announce import announce
    from chatroom.commands.db import db
    from chatroom.commands.history import history
    from chatroom.commands.join import join
    from chatroom.commands.serve import serve
    from chatroom.commands.status import status, who

    cli.add_command(serve)
    cli.add_command(announce)
    cli.add_command(db)
    cli.add_command(history)
    cli.add_command(join)
    cli.add_command(status)
    cli.add_command(who)


_register()


def main() -> None:
    """Console-script entry point."""
    cli()
