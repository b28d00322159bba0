"""Retransmission timer, window and catch-up, with an explicit clock."""

from __future__ import annotations

import pytest

from chatroom import protocol as p
from chatroom.server.delivery import BURST, RTO_INITIAL, RTO_MAX, RTO_MIN, WINDOW, Outbox
from tests.support.harness import A, B, Harness

pytestmark = pytest.mark.pure


def test_window_bounds_unacked_events() -> None:
    box = Outbox(acked=10, sent_upto=10)
    for event_id in range(11, 11 + WINDOW):
        assert box.can_push(event_id)
        box.pushed(event_id, 0.0)
    assert not box.can_push(11 + WINDOW)
    assert not box.can_push(13)  # never out of sequence
    assert box.ack(20, 0.1)
    assert list(box.catch_up(last_id=WINDOW + 100)) == list(range(11 + WINDOW, 21 + WINDOW))


def test_rto_follows_rfc6298_and_clamps() -> None:
    box = Outbox(0, 0, heard_at=0.0)
    assert box.rto == RTO_INITIAL
    box.pushed(1, 0.0)
    box.ack(1, 0.1)  # first sample: srtt = 0.1, rttvar = 0.05 -> 0.1 + 4*0.05 = 0.3
    assert box.estimator.srtt == pytest.approx(0.1)
    assert box.rto == pytest.approx(0.3)
    for i in range(2, 40):
        box.pushed(i, float(i))
        box.ack(i, i + 0.01)
    assert box.rto == RTO_MIN  # a fast, steady path is clamped at the minimum


def test_expiry_retransmits_oldest_and_backs_off() -> None:
    box = Outbox(0, 0)
    for i in range(1, 21):
        box.pushed(i, 0.0)
    assert box.expired(RTO_INITIAL - 0.01) == []
    assert box.expired(RTO_INITIAL) == list(range(1, BURST + 1))
    assert box.rto == 2 * RTO_INITIAL
    for _ in range(10):
        box.expired(1e6)
    assert box.rto == RTO_MAX


def test_karn_no_sample_from_retransmitted_events() -> None:
    box = Outbox(0, 0, heard_at=0.0)
    box.pushed(1, 0.0)
    box.expired(5.0)
    box.ack(1, 9.0)  # ambiguous: sent at 0 and at 5
    assert box.estimator.srtt is None
    assert box.deadline is None


def test_samples_only_from_the_largest_id_and_only_once_the_client_was_heard() -> None:
    box = Outbox(0, 0)
    box.pushed(1, 0.0)  # sent before the client was heard from (its WELCOME was lost)
    box.ack(1, 3.2)
    assert box.estimator.srtt is None  # that wait is not the path's round trip
    box.heard_at = 3.2
    box.pushed(2, 3.3)
    box.pushed(3, 4.0)
    box.ack(3, 4.05)  # 2 was acknowledged late, with 3: only 3 is measured
    assert box.estimator.srtt == pytest.approx(0.05)


def test_progress_collapses_the_backoff() -> None:
    box = Outbox(0, 0, heard_at=0.0)
    for i in range(1, 4):
        box.pushed(i, 0.0)
    for t in (1.0, 3.0, 7.0):
        box.expired(t)
    assert box.rto == RTO_MAX
    box.ack(1, 7.5)  # no sample (retransmitted), but the path works again
    assert box.rto == RTO_INITIAL
    assert box.deadline == pytest.approx(7.5 + RTO_INITIAL)


def _event_ids(data: list[bytes]) -> list[int]:
    return [f.event.id for f in map(p.parse_server, data) if isinstance(f, p.EventFrame)]


def test_room_retransmits_unacked_events() -> None:
    h = Harness("indexed")
    sid = h.v2_login(A, "alice")
    h.send(B, "L bob")
    h.send(B, "C bob are you there")
    assert _event_ids(h.take(A)) == [2, 3]
    h.tick(RTO_INITIAL + 0.01)
    assert _event_ids(h.take(A)) == [1, 2, 3]  # nothing acked yet: all resent
    h.send(A, f"v2 ACK {sid} 3")
    h.tick(10)
    assert _event_ids(h.take(A)) == []


def test_room_holds_a_silent_client_and_catches_it_up() -> None:
    h = Harness("indexed", idle_timeout=1000.0, rate=None)
    sid = h.v2_login(A, "alice")
    h.send(B, "L bob")
    for i in range(WINDOW + 100):
        h.send(B, f"C bob m{i}")
    pushed = _event_ids(h.take(A))
    assert pushed == list(range(2, WINDOW + 1))  # join (1) was taken at login
    h.send(A, f"v2 ACK {sid} 40")
    assert _event_ids(h.take(A)) == list(range(WINDOW + 1, 40 + WINDOW + 1))


def test_own_message_is_acked_not_sent_and_resent_as_an_event_if_unacked() -> None:
    h = Harness("indexed", rate=None)
    sid = h.v2_login(A, "alice")
    h.take(A)
    h.send(A, f"v2 SAY {sid} 1 hello")
    frames = [p.parse_server(d) for d in h.take(A)]
    assert frames == [p.Acked(1, 2, 1_700_000_000.0 + h.now)]  # no EV of its own message
    h.tick(RTO_INITIAL + 0.01)  # never acknowledged: the event is resent as an EV
    assert _event_ids(h.take(A)) == [1, 2]
    h.send(A, f"v2 ACK {sid} 2")
    h.tick(10)
    assert h.take(A) == []


def test_held_session_catches_up_without_its_own_messages() -> None:
    h = Harness("indexed", idle_timeout=1000.0, rate=None)
    sid = h.v2_login(A, "alice")
    h.send(B, "L bob")
    for i in range(WINDOW):
        h.send(B, f"C bob m{i}")
    # alice joined as 1, bob as 2, his lines are 3..WINDOW + 2; the window is full.
    assert max(_event_ids(h.take(A))) == WINDOW
    h.send(B, "C bob before")
    for seq in (1, 2):
        h.send(A, f"v2 SAY {sid} {seq} mine {seq}")
    h.send(B, "C bob after")
    frames = [p.parse_server(d) for d in h.take(A)]
    assert [f.id for f in frames if isinstance(f, p.Acked)] == [WINDOW + 4, WINDOW + 5]
    assert _event_ids([p.encode(f) for f in frames if isinstance(f, p.EventFrame)]) == []
    h.send(A, f"v2 ACK {sid} {WINDOW}")
    # Caught up with bob's lines, but not alice's two (their ACKEDs were her copies).
    assert _event_ids(h.take(A)) == [WINDOW + 1, WINDOW + 2, WINDOW + 3, WINDOW + 6]


def test_catch_up_stops_where_the_ring_ends_then_gone_and_resume() -> None:
    """A session held behind its window while its room moves on by more than the
    room keeps in memory: the catch-up on its ACK stops at the first event no
    longer in the ring (v2.py ``_acked``) and sends nothing after it (the client
    shows events in order, so they would only wait behind the hole); the PULL of
    the hole gets ``GONE <oldest>``, and once the client takes that as its new
    start (acknowledging up to oldest - 1) it is caught up from the ring again."""
    ring = 64
    h = Harness("indexed", idle_timeout=1000.0, rate=None, ring_size=ring)
    sid = h.v2_login(A, "alice")
    h.send(B, "L bob")
    for i in range(WINDOW + 100):
        h.send(B, f"C bob m{i}")
    last = WINDOW + 102  # alice joined as 1, bob as 2, his lines are 3..last
    oldest = last - ring + 1
    assert oldest > WINDOW + 1  # the next event alice needs is gone from memory
    assert _event_ids(h.take(A)) == list(range(2, WINDOW + 1))  # the window is full

    h.send(A, f"v2 ACK {sid} {WINDOW}")  # she has shown everything she got
    assert h.take(A) == []  # nothing: neither the lost events nor later ones
    h.tick(RTO_MAX + 1)
    assert h.take(A) == []  # and nothing to retransmit
    h.send(A, p.encode_client(p.Ping(sid, WINDOW)))
    assert [p.parse_server(d) for d in h.take(A)] == [p.Pong(last)]  # the tail is known
    h.send(A, p.encode_client(p.Pull(sid, WINDOW, 32)))
    assert [p.parse_server(d) for d in h.take(A)] == [p.Gone(oldest)]

    # The client starts again at oldest: a pull from there is answered...
    h.send(A, p.encode_client(p.Pull(sid, oldest - 1, 32)))
    assert _event_ids(h.take(A)) == list(range(oldest, oldest + 32))
    # ...and its ACK opens the window: the catch-up sends the rest of the ring, in order.
    h.send(A, p.encode_client(p.Ack(sid, oldest - 1)))
    assert _event_ids(h.take(A)) == list(range(oldest, last + 1))
    h.send(A, p.encode_client(p.Ack(sid, last)))
    h.send(B, "C bob live again")
    assert _event_ids(h.take(A)) == [last + 1]  # back to the live fan-out
