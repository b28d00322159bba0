"""What the tests and the benchmarks share: starting and stopping the processes
they measure or check, and a lossy UDP proxy to put in front of a server.

Both tests/ and bench/ import it; it imports neither, and the product
(chatroom/, storage/) never imports it (the contracts in pyproject.toml).
It is not shipped in the wheel.
"""
