"""``chatroom join`` end to end: log in, fork, and let each process do its part.

Login happens first, in the single process, so that a refused name can be asked
for again at a plain prompt and a server that does not answer is reported before
anything is forked. Then ``os.fork()`` (the course's requirement):

* the parent is the keyboard process (chatroom/client/keyboard.py) and reaps
  the child with ``waitpid`` whichever way the session ends;
* the child is the network process (chatroom/client/network.py): it owns the
  socket, the session state machine and the screen, and leaves with ``os._exit``
  so that nothing of the parent's (atexit handlers, buffered output) runs twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import selectors
import shutil
import signal
import sys
import termios
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from chatroom import protocol as p
from chatroom.client.effects import (
    LoggedIn,
    LoginRefused,
    NoAnswer,
    Output,
    Transmit,
    UseServer,
)
from chatroom.client.i18n import detect_lang, tr
from chatroom.client.keyboard import Keyboard
from chatroom.client.link import Link, ResolveError
from chatroom.client.network import NetworkProcess
from chatroom.client.render import Renderer
from chatroom.client.servers import Server
from chatroom.client.session import ClientSession, SessionConfig
from chatroom.client.style import Style, colour_enabled, cursor_enabled
from chatroom.client.terminal import Screen, SharedTerminal


class ClientError(Exception):
    """Something the user can act on (no traceback): the message says what."""


@dataclass(frozen=True)
class JoinOptions:
    name: str | None
    host: str = "127.0.0.1"
    port: int = 8888
    history: int = 20
    lang: str | None = None
    no_color: bool = False
    config: SessionConfig = field(default_factory=SessionConfig)
    #: The room to start in (checked by the caller: ``protocol.check_room``).
    room: str = p.LOBBY
    #: Several servers, one chat (``--server``, in order); empty: ``host``:``port``.
    servers: tuple[Server, ...] = ()

    @property
    def server_list(self) -> tuple[Server, ...]:
        """The servers to talk to, first one first."""
        return self.servers or (Server(self.host, self.port),)


def run(opts: JoinOptions) -> int:
    """The whole client; returns the exit status."""
    env = os.environ
    lang: p.Lang = detect_lang(opts.lang, env)
    out_tty = sys.stdout.isatty()
    tty = out_tty and sys.stdin.isatty()
    style = Style(colour_enabled(isatty=out_tty, no_color_flag=opts.no_color, env=env))
    renderer = Renderer(lang, style, columns=_columns if out_tty else (lambda: 0))
    servers = opts.server_list
    try:
        link = Link.open(servers)
    except ResolveError as exc:
        raise ClientError(str(exc)) from exc
    config = dataclasses.replace(
        opts.config,
        history=max(0, opts.history),
        # Piped input: wait on leaving while its lines are still being stored.
        flush_while_progress=opts.config.flush_while_progress or not sys.stdin.isatty(),
    )
    session = ClientSession(
        opts.name or "",
        random.SystemRandom(),
        config,
        start_room=opts.room,
        servers=tuple(server.label for server in servers),
    )
    status, rest = _login(link, session, renderer, opts, tty)
    if status is not None:
        link.close()
        return status
    cursor = cursor_enabled(isatty=tty, env=env)
    with _typeahead_unechoed(tty) as echo_again:
        _say(renderer.notice("joined_as", {"name": session.name}, time.time()))
        return _fork(link, session, renderer, rest, tty=tty, cursor=cursor, echo_again=echo_again)


@contextlib.contextmanager
def _typeahead_unechoed(tty: bool) -> Iterator[Callable[[], None]]:
    """Keys typed between the login and readline's first prompt are not echoed
    by the terminal: readline shows them in its line once it reads them. (With
    the terminal echoing, a line typed that early stayed on the screen twice:
    as a bare line, and as the message.) The echo stays off while the client
    runs: with GNU readline the keyboard tells readline to show the keys itself
    (terminal.py, show_typing), so a key typed while readline is not reading is
    never echoed twice. Yields what turns the echo back on, for a keyboard
    without GNU readline (input() reads a cooked line then). The terminal is
    restored on the way out in any case."""
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd) if tty else None

    def echo_again() -> None:
        if saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(fd, termios.TCSANOW, saved)

    if saved is not None:
        quiet = list(saved)
        quiet[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield echo_again
    finally:
        echo_again()


def _columns() -> int:
    return shutil.get_terminal_size().columns


# ---------------------------------------------------------------------- login


def _login(
    link: Link, session: ClientSession, renderer: Renderer, opts: JoinOptions, tty: bool
) -> tuple[int | None, list[Output]]:
    """Log in, asking for a name until one is accepted. (None, the session's
    outputs that followed ``LoggedIn``) once logged in, else (the exit status, []):
    1 when a name was refused and no other came (a script must see that it did
    not join), 0 when the prompt was simply closed."""
    name = opts.name
    refused = False
    while True:
        if not name:
            try:
                name = input(renderer.plain("name_prompt") if tty else "").strip()
            except (EOFError, KeyboardInterrupt):
                print()
                return (1 if refused else 0), []
            continue
        clean, why = p.check_name(name)
        if why is not None:
            print(renderer.refused(why, ""), file=sys.stderr)
            name = None
            refused = True
            continue
        outcome, rest = _exchange(link, session, renderer, session.login(clean, time.monotonic()))
        match outcome:
            case LoggedIn():
                return None, rest
            case LoginRefused(code=code, text=text):
                print(renderer.refused(code, text), file=sys.stderr)
                name = None
                refused = True
            case NoAnswer():
                servers = opts.server_list
                if len(servers) == 1:
                    one = servers[0]
                    message = renderer.plain("no_answer", host=one.host, port=one.port)
                else:
                    labels = ", ".join(server.label for server in servers)
                    message = renderer.plain("no_answer_any", servers=labels)
                print(message, file=sys.stderr)
                return 1, []


def _exchange(
    link: Link, session: ClientSession, renderer: Renderer, first: list[Output]
) -> tuple[LoggedIn | LoginRefused | NoAnswer, list[Output]]:
    """Run the session until the login settles (it gives up by itself). Returns
    the outcome and the outputs that came after it in the same batch (after
    WELCOME: the history PULL, WHO, events that overtook it) for the network
    process to apply."""
    pending = list(first)
    link.sock.setblocking(False)
    with selectors.DefaultSelector() as sel:
        sel.register(link.sock, selectors.EVENT_READ)
        while True:
            lines: list[str] = []
            for i, out in enumerate(pending):
                match out:
                    case Transmit(payload=data):
                        link.send(data)  # nobody listening yet: the retry timer covers it
                    case UseServer(index=index):
                        link.use(index)  # the first server(s) did not answer
                    case LoggedIn() | LoginRefused() | NoAnswer():
                        _say(lines)
                        return out, pending[i + 1 :]
                    case _:
                        lines += renderer.render(out, time.time())
            _say(lines)
            deadline = session.deadline()
            now = time.monotonic()
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - now))
            pending = []
            if sel.select(wait):
                try:
                    got = link.recv()
                except OSError:
                    got = None  # nobody there (yet): the session retries
                if got is not None:
                    pending += session.receive(got, time.monotonic())
            pending += session.tick(time.monotonic(), time.time())


def _say(lines: list[str]) -> None:
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()


# ---------------------------------------------------------------------- fork


def _fork(
    link: Link,
    session: ClientSession,
    renderer: Renderer,
    first: list[Output],
    *,
    tty: bool,
    cursor: bool,
    echo_again: Callable[[], None],
) -> int:
    shared = SharedTerminal()
    cmd_r, cmd_w = os.pipe()
    names_r, names_w = os.pipe()
    parent = os.getpid()
    # Installed before the fork: the child may print (and signal) before the
    # parent has set up anything, and SIGUSR1's default action is to terminate.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # ------------------------------------------------ the network process
        code = 1
        try:
            os.close(cmd_w)
            os.close(names_r)
            screen = Screen(shared, sys.stdout.fileno(), cursor=cursor, parent=parent)
            network = NetworkProcess(link, session, renderer, screen, cmd_r, names_w, parent)
            code = network.run(first)
        except BaseException as exc:  # never unwind into the parent's code
            try:
                os.write(2, f"chatroom: network process: {exc!r}\n".encode())
            finally:
                os._exit(1)
        os._exit(code)
    # ---------------------------------------------------------------- the keyboard process
    os.close(cmd_r)
    os.close(names_w)
    link.close()
    keyboard = Keyboard(
        pid,
        cmd_w,
        names_r,
        shared,
        prompt=renderer.prompt(session.current_chan, session.name),
        tty=tty,
        cursor=cursor,
        say=lambda text: _say([text]),
        child_died_text=tr(renderer.lang, "child_died"),
        echo_again=echo_again,
    )
    return keyboard.run()
