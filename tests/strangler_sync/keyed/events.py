"""The keyed app's aggregate declarations: the owner's and the follower's binding of one contract each."""

import uuid

from strangler_sync.aggregates import Aggregate, Schema

TICKET = Aggregate(
    name="ticket", key_type=uuid.UUID,
    schemas={1: Schema(required={"id": str, "title": str, "seats": int})},
    model="keyed.Ticket", fields=["id", "title", "seats"],
)
TICKET_COPY = TICKET.bind(model="keyed.TicketCopy", fields={"id": "ticket_id", "title": "heading", "seats": "seats"})

LABEL = Aggregate(
    name="label", key="code", key_type=str,
    schemas={1: Schema(required={"code": str, "name": str})},
    model="keyed.Label", fields=["code", "name"],
)
LABEL_COPY = LABEL.bind(model="keyed.LabelCopy")
