"""Owner and follower models keyed by UUID (tickets) and by text (labels), with different attribute names."""

import uuid

from django.db import models


class Ticket(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    title = models.CharField(max_length=100)
    seats = models.IntegerField(default=0)

    def __str__(self) -> str:
        return self.title


class TicketCopy(models.Model):
    ticket_id = models.UUIDField(primary_key=True)
    heading = models.CharField(max_length=100)
    seats = models.IntegerField(default=0)

    def __str__(self) -> str:
        return self.heading


class Label(models.Model):
    code = models.CharField(max_length=40, primary_key=True)
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.code


class LabelCopy(models.Model):
    code = models.CharField(max_length=40, primary_key=True)
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.code
