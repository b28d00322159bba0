"""One module per ``chatroom`` sub-command; chatroom/cli.py assembles them."""
