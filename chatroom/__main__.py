"""Allow ``python -m chatroom``."""

from chatroom.cli import main

if __name__ == "__main__":
    main()
