"""What several test modules share: harnesses, server processes, clients, data.

Test modules import from here, never from one another; the product (chatroom/,
storage/) never imports it.
"""
