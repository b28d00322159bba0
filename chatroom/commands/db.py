"""``chatroom db``: the database's schema revision (Alembic, without alembic.ini).

``chatroom serve`` upgrades on start; these commands are for operators who want to do
it by hand, see where a database stands, or go back.
"""

from __future__ import annotations

import click

from chatroom.commands.options import db_option


@click.group("db")
def db() -> None:
    """Inspect and migrate the history database's schema."""


# storage (SQLAlchemy, Alembic) is imported inside each command: `chatroom join` and
# `chatroom --help` should not pay for it at start-up.


@db.command("upgrade")
@click.argument("rev", default="head", metavar="[REV]")
@db_option
def upgrade(rev: str, db: str | None) -> None:
    """Upgrade the schema to REV (default: head), creating the database if needed."""
    from storage import migrations
    from storage.config import describe, resolve_url
    from storage.errors import StorageError

    url = resolve_url(db)
    try:
        before = migrations.current(url)
        migrations.upgrade(url, rev)
        after = migrations.current(url)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc
    where = describe(url)
    if before == after:
        click.echo(f"{where}: already at {_label(after)}")
    else:
        click.echo(f"{where}: upgraded {_label(before)} -> {_label(after)}")


@db.command("current")
@db_option
def current(db: str | None) -> None:
    """Show the database's schema revision and whether it is up to date."""
    from storage import migrations
    from storage.config import describe, resolve_url
    from storage.errors import StorageError

    url = resolve_url(db)
    try:
        rev = migrations.current(url)
        head = migrations.head()
        known = migrations.known_revisions()
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc
    where = describe(url)
    if rev is None:
        click.echo(f"{where}: no schema (head is {head}; `chatroom db upgrade` creates it)")
    elif rev == head:
        click.echo(f"{where}: {rev} (head)")
    elif rev in known:
        click.echo(f"{where}: {rev} (behind head {head}; run `chatroom db upgrade`)")
    else:
        click.echo(f"{where}: {rev} (unknown here: newer than this chatroom, head {head})")


@db.command("downgrade")
@click.argument("rev", metavar="REV")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@db_option
def downgrade(rev: str, yes: bool, db: str | None) -> None:
    """Downgrade the schema to REV (a revision id, or base to drop everything).

    Whatever the later revisions stored is lost (downgrading to base deletes the
    whole history), so this asks first unless --yes.
    """
    from storage import migrations
    from storage.config import describe, resolve_url
    from storage.errors import StorageError

    url = resolve_url(db)
    where = describe(url)
    try:
        # Refuse what the downgrade would refuse (not a database, not ours, too new,
        # missing, unknown REV) before asking: the question is only for a real one.
        before = migrations.check_target(url, rev, upgrade=False)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc
    if not yes and before is not None and before != rev:
        click.confirm(
            f"Downgrade {where} to {rev}? Data kept by later revisions will be lost",
            abort=True,
        )
    try:
        migrations.downgrade(url, rev)
        after = migrations.current(url)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc
    if before == after:
        click.echo(f"{where}: already at {_label(after)}")
    else:
        click.echo(f"{where}: downgraded {_label(before)} -> {_label(after)}")


def _label(rev: str | None) -> str:
    return rev if rev is not None else "base (no schema)"
