"""Admin: outbox (dead rows visible, requeue action), inbox, applied versions and dead letters (read-only)."""

from django.contrib import admin, messages

from strangler_sync.models import AppliedVersion, BackfillCheckpoint, DeadLetter, InboxMessage, OutboxEvent
from strangler_sync.services import outbox_requeue


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "event_type", "aggregate_type", "aggregate_id", "version", "status", "attempts",
                    "occurred_at", "published_at", "last_error"]
    list_filter = ["status", "event_type", "aggregate_type"]
    search_fields = ["=message_id", "=aggregate_id", "=correlation_id"]
    actions = ["requeue"]

    @admin.action(description="Requeue selected (dead or pending) events")
    def requeue(self, request, queryset):
        count = outbox_requeue(event_ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{count} event(s) requeued.", messages.SUCCESS)


@admin.register(InboxMessage)
class InboxMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "message_id", "event_type", "aggregate_type", "aggregate_id", "version", "outcome",
                    "origin", "received_at"]
    list_filter = ["outcome", "event_type", "origin"]
    search_fields = ["=message_id", "=aggregate_id", "=correlation_id"]


@admin.register(AppliedVersion)
class AppliedVersionAdmin(ReadOnlyAdmin):
    list_display = ["aggregate_type", "aggregate_id", "version", "updated_at"]
    list_filter = ["aggregate_type"]
    search_fields = ["=aggregate_id"]


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ["id", "message_id", "event_type", "queue", "attempts", "error", "created_at"]
    list_filter = ["queue", "event_type"]


@admin.register(BackfillCheckpoint)
class BackfillCheckpointAdmin(ReadOnlyAdmin):
    list_display = ["aggregate_type", "last_id", "emitted", "finished", "updated_at"]
