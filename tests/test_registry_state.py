"""A Hypothesis state machine: every registry kind against a plain dict model.

All four implementations run side by side on the same random sequence of operations
and must give the model's answers: lookups, removals, lengths, join order, and the
same refusals. Names and addresses come from small pools so that duplicates, re-adds
and address clashes happen often.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from chatroom.registry import REGISTRY_KINDS, Address, DuplicateUser, Registry, User, make_registry

pytestmark = pytest.mark.pure

KEYS = st.sampled_from(["alice", "bob", "carol", "dave", "erin", "frank"])
ADDRESSES = st.builds(
    lambda host, port: (host, port),
    st.sampled_from(["127.0.0.1", "10.0.0.2"]),
    st.sampled_from([4000, 4001, 4002, 4003]),
)


class RegistryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # The model: key -> address, in join order (dicts keep insertion order).
        self.model: dict[str, Address] = {}
        self.regs: dict[str, Registry] = {kind: make_registry(kind) for kind in REGISTRY_KINDS}

    @rule(key=KEYS, address=ADDRESSES)
    def add(self, key: str, address: Address) -> None:
        refused = key in self.model or address in self.model.values()
        for kind, reg in self.regs.items():
            new = User(name=key.title(), key=key, address=address)
            try:
                reg.add(new)
            except DuplicateUser:
                assert refused, f"{kind} refused a free {key!r}/{address!r}"
            else:
                assert not refused, f"{kind} accepted a duplicate {key!r}/{address!r}"
        if not refused:
            self.model[key] = address

    @rule(key=KEYS)
    def remove(self, key: str) -> None:
        expected = self.model.pop(key, None)
        for kind, reg in self.regs.items():
            got = reg.remove(key)
            if expected is None:
                assert got is None, kind
            else:
                assert got is not None and (got.key, got.address) == (key, expected), kind

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        for kind, reg in self.regs.items():
            got = reg.get(key)
            found = None if got is None else (got.key, got.address)
            assert found == ((key, self.model[key]) if key in self.model else None), kind

    @rule(address=ADDRESSES)
    def find_address(self, address: Address) -> None:
        holders = [k for k, a in self.model.items() if a == address]
        for kind, reg in self.regs.items():
            got = reg.find_address(address)
            assert (None if got is None else got.key) == (holders[0] if holders else None), kind

    @rule(key=KEYS, address=ADDRESSES)
    def readdress(self, key: str, address: Address) -> None:
        holder = next((k for k, a in self.model.items() if a == address), None)
        for kind, reg in self.regs.items():
            user = reg.get(key)
            if user is None:
                assert key not in self.model, kind
                continue
            try:
                reg.readdress(user, address)
            except DuplicateUser:
                assert holder not in (None, key), kind
            else:
                assert holder in (None, key), kind
                assert user.address == address, kind
        if key in self.model and holder in (None, key):
            self.model[key] = address

    @invariant()
    def same_order_and_length(self) -> None:
        expected = list(self.model.items())
        for kind, reg in self.regs.items():
            assert len(reg) == len(self.model), kind
            assert [(u.key, u.address) for u in reg] == expected, kind


RegistryMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestRegistryMachine = RegistryMachine.TestCase
