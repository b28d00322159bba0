"""``chatroom status`` and ``chatroom who``: ask a running server, over the local
control socket (chatroom/control.py), how it is doing and who is in a room."""

from __future__ import annotations

import json
from typing import Any

import click

from chatroom import control
from chatroom.commands.options import port_option


def _ask(port: int, line: str) -> Any:
    try:
        answer = control.request(port, line)
    except control.ControlError as exc:
        raise click.ClickException(str(exc)) from exc
    verb, _, rest = answer.partition(" ")
    if verb != "OK":
        raise click.ClickException(f"the server refused: {rest or answer}")
    try:
        return json.loads(rest)
    except ValueError as exc:
        raise click.ClickException(f"unexpected answer from the server: {rest[:80]}") from exc


@click.command()
@port_option()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON, for scripts.")
def status(port: int, as_json: bool) -> None:
    """How the server on PORT is doing: uptime, who is online in which room,
    messages per second over the last minute, dropped datagrams and why, the
    database and whether it can be written.

    Works only on the server's machine, as the user running it.
    """
    report = _ask(port, control.STATUS)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    click.echo(format_status(report))


@click.command()
@click.argument("room", default="#lobby")
@port_option()
@click.option("--json", "as_json", is_flag=True, help="Print the members as JSON.")
def who(room: str, port: int, as_json: bool) -> None:
    """Who is in ROOM (default #lobby) on the server on PORT, every name."""
    if not room.startswith("#"):
        room = "#" + room  # an unquoted #room is a shell comment: 'dev' means '#dev'
    found = _ask(port, f"{control.WHO} {room}")
    if as_json:
        click.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    click.echo(f"{found['room']}: {found['total']} online")
    for name in found["names"]:
        click.echo(f"  {name}")


def format_status(r: dict[str, Any]) -> str:
    """The status as a person reads it."""
    storage = r["storage"]
    size = storage["bytes"]
    state = "writable" if storage["writable"] else f"NOT WRITABLE ({storage['error']})"
    last = storage["last_commit_s_ago"]
    lines = [
        f"chatroom on udp://{r['address']}, up {_duration(r['uptime_s'])}",
        f"online: {r['online']} in {len(r['rooms'])} room(s)",
        *(f"  {room}: {members}" for room, members in r["rooms"].items()),
        f"messages: {r['messages_per_s']:g}/s over the last minute; "
        f"{r['events_stored']:,} events stored",
        f"datagrams: {r['datagrams']:,} received"
        + "".join(f"; {k} {v:,}" for k, v in r["dropped"].items()),
        *(
            ["refused: " + "; ".join(f"{k} {v:,}" for k, v in r["refused"].items())]
            if r.get("refused")
            else []
        ),
        f"database: {storage['database']}"
        + (f" ({size / 1e6:.1f} MB)" if size is not None else "")
        + f", {state}"
        + (f", last commit {last:g} s ago" if last is not None else "")
        + (f", {storage['waiting_events']} event(s) waiting" if storage["waiting_events"] else ""),
    ]
    cluster = r.get("cluster")
    if cluster:
        lines.append(
            f"cluster: {cluster['name']}, node {cluster['node']} of {cluster['nodes']}, "
            f"broker {cluster['broker']}; {cluster['repaired']:,} event(s) read back "
            "from the database"
        )
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"
