"""A client that behaves exactly like the course's reference client (see
../shared/course-notes.txt): ``L name`` until ``OK``, then fork: the child prints
every datagram until ``EXIT``, the parent reads lines and sends ``C name text``,
``Q name`` on ``quit``. Used by the integration tests as a peer no one on this
project wrote against our server. Run: ``python course_client.py HOST PORT``.
"""

from __future__ import annotations

import os
import socket
import sys


def main() -> None:
    addr = (sys.argv[1], int(sys.argv[2]))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    while True:
        name = input("请输入姓名:")
        s.sendto(("L " + name).encode(), addr)
        data, _ = s.recvfrom(1024)
        if data.decode() == "OK":
            print("您已进入聊天室", flush=True)
            break
        print(data.decode(), flush=True)
    pid = os.fork()
    if pid == 0:
        s.settimeout(30)
        while True:
            data, _ = s.recvfrom(2048)
            if data.decode() == "EXIT":
                os._exit(0)
            print(data.decode() + "\n发言:", end="", flush=True)
    else:
        while True:
            try:
                text = input("发言:")
            except (KeyboardInterrupt, EOFError):
                text = "quit"
            if text.strip() == "quit":
                s.sendto(("Q " + name).encode(), addr)
                os.waitpid(pid, 0)
                sys.exit("退出聊天室")
            s.sendto(f"C {name} {text}".encode(), addr)


if __name__ == "__main__":
    main()
