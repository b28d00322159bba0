"""Name skeletons: two names with the same skeleton look alike (UTS #39 §4).

``раypal`` (Cyrillic р and а) and ``paypal`` differ in code points but not on
screen; a chat that lets both be online lets one impersonate the other. The
room refuses a name whose skeleton equals that of a user who is online.

The character data is Unicode's confusables.txt as shipped by the maintained
``confusable-homoglyphs`` package (its confusables.json: pairs of single
characters that look alike). We group those pairs into classes and map every
character to one representative per class (ASCII first, then the lowest code
point), after NFKC and case folding. That is UTS #39's skeleton restricted to
single-character mappings: multi-character look-alikes such as ``rn`` / ``m`` are
not caught. Why not hand-written: the table has ~9,600 entries kept in step with
Unicode by that package.
"""

from __future__ import annotations

import json
import unicodedata
from functools import cache
from importlib.resources import files


@cache
def _table() -> dict[str, str]:
    raw = files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    data: dict[str, list[dict[str, str]]] = json.loads(raw)
    parent: dict[str, str] = {}

    def find(ch: str) -> str:
        root = ch
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(ch, ch) != root:  # path compression
            parent[ch], ch = root, parent[ch]
        return root

    def rank(ch: str) -> tuple[bool, int]:
        return (not ch.isascii(), ord(ch))

    for ch, entries in data.items():
        if len(ch) != 1:
            continue
        for entry in entries:
            other = entry["c"]
            if len(other) != 1:
                continue
            a, b = find(ch), find(other)
            if a != b:
                low, high = (a, b) if rank(a) <= rank(b) else (b, a)
                parent[high] = low
                parent.setdefault(low, low)
    return {ch: find(ch) for ch in parent}


def _map(text: str) -> str:
    table = _table()
    return unicodedata.normalize("NFD", "".join(table.get(ch, ch) for ch in text))


def skeletons(name: str) -> tuple[str, str]:
    """Two keys; names that look alike share at least one (module docstring).

    The first ignores case (``аlice`` ~ ``Alice``); the second keeps it, because
    folding first would hide that capital ``I`` looks like small ``l`` (``bill`` ~
    ``biII``).
    """
    nfkc = unicodedata.normalize("NFKC", name)
    return _map(_map(nfkc.casefold()).casefold()), _map(nfkc)
