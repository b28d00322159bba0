"""chatroom: a terminal group chat over UDP with stored history."""

__version__ = "0.1.0"
