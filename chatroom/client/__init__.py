"""The forking terminal client (``chatroom join``), speaking the v2 dialect.

Sans-I/O core, thin shell, like the server:

* ``session``  the protocol state machine (login, ordering, gaps, acks, retries,
  heartbeats, resume, rooms and direct messages); ``timeline``/``stream`` (one
  per conversation: event order, pulls, /history), ``outbox`` (messages in
  flight) and ``rooms`` (JOIN/PART until answered) are its parts; ``rtt`` the
  RFC 6298 estimator;
  ``effects`` the values it returns; ``commands`` what a typed line means.
* ``i18n``, ``style``, ``width``, ``render``: what the screen shows (catalogs,
  colours, wide characters, line layout).
* ``network`` (the child process: socket, session, screen), ``keyboard`` (the
  parent: readline), ``terminal`` (what both share on the tty) and ``shell``
  (login, fork, reaping). See docs/client.md.
"""
