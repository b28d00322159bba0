"""The forking terminal client (``chatroom join``), speaking the v2 dialect.

Sans-I/O core, thin shell, like the server:

* ``session``  the protocol state machine (login, ordering, gaps, acks, retries,
  heartbeats, resume, rooms and direct messages); ``timeline``/``stream`` (one
  per conversation: event order, pulls, /history), ``outbox`` (messages in
  flight), ``rooms`` (JOIN/PART until answered) and ``servers`` (which of
  several servers to talk to) are its parts; ``rtt`` the RFC 6298 estimator;
  ``effects`` the values it returns; ``commands`` what a typed line means.
* ``i18n``, ``style``, ``width``, ``render``: what the screen shows (catalogs,
  colours, wide characters, line layout).
* ``network`` (the child process: socket, session, screen), ``keyboard`` (the
  parent: readline), ``terminal`` (what both share on the tty), ``link`` (the
  socket and the servers' addresses) and ``shell`` (login, fork, reaping). See
  docs/client.md.
"""
