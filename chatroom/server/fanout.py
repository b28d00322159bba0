"""Fan-out: who receives a new event, and as which bytes.

Classic peers (in the lobby only) get the course's plain line, never their own;
every v2 member gets the EV frame while its window allows (else it is held and
catches up on its ACKs), except the v2 sender of a message: its ACKED (with the
event's time) is its copy, so the event counts as pushed to it (retransmitted
as an EV if unacknowledged) without a datagram of its own. The frame is encoded
once per room and sent to many addresses.
"""

from __future__ import annotations

from chatroom import protocol as p
from chatroom.events import Event
from chatroom.registry import Address, User
from chatroom.server.conversation import Conversation
from chatroom.server.crowd import Crowds
from chatroom.server.effects import Effect, Send, Store


def fan_out(
    conv: Conversation,
    event: Event,
    now: float,
    crowds: Crowds,
    *,
    exclude: Address | None = None,
    sender: User | None = None,
) -> list[Effect]:
    """``Store(event)`` and the sends that deliver it to ``conv``'s members (a
    large room's: crowd.py)."""
    if conv.crowd is not None:
        return crowds.fan_out(conv, event, now, exclude=exclude, sender=sender)
    lang = crowds.lang
    pos = event.room_seq
    classic: list[Address] = []
    classic_nl: list[Address] = []
    v2: list[User] = []
    for u in conv.members:
        session = u.session
        if session is not None:
            outbox = session.subs.get(conv.key)
            if outbox is not None and outbox.can_push(pos):  # else held: catches up
                outbox.pushed(pos, now)
                if u is not sender:
                    v2.append(u)
        elif u.address != exclude:
            (classic_nl if u.newline else classic).append(u.address)
    effects: list[Effect] = [Store(event)]
    if classic or classic_nl:
        plain = p.classic_event(lang, event)
        if classic:
            effects.append(Send(plain, tuple(classic), event.id))
        if classic_nl:
            effects.append(Send(plain + b"\n", tuple(classic_nl), event.id))
    if not v2:
        return effects
    if conv.is_room:
        # The ring's copy (encoded once for every later resend), unless the ring
        # keeps nothing (a ring size of 0).
        frame = conv.ring.frame(pos) or p.encode(p.EventFrame(event))
        effects.append(Send(frame, tuple(u.address for u in v2), event.id))
    else:
        for u in v2:
            frame = p.encode(p.EventFrame(event, conv.label_for(u.key)))
            effects.append(Send(frame, (u.address,), event.id))
    return effects
