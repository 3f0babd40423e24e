"""Orders admin: orders with their lines and payments, and ship/deliver/cancel actions through orders.services."""

from __future__ import annotations

from django.contrib import admin, messages

from monolith.orders import services
from monolith.orders.models import Order, OrderLine, Payment
from servicekit.errors import DomainError


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    can_delete = False
    readonly_fields = ("product", "sku", "name", "unit_price", "quantity", "line_total")


class PaymentInline(admin.TabularInline):
    model = Payment
    extra = 0
    can_delete = False
    readonly_fields = ("kind", "status", "provider", "provider_reference", "amount", "currency", "card_last4",
                       "error_code", "message", "created_at")


def _status_action(service, verb: str):
    def action(modeladmin, request, queryset):
        done = 0
        for order in queryset.order_by("id"):  # fixed order: row locks in ascending primary key
            try:
                service(order=order)
                done += 1
            except DomainError as exc:
                modeladmin.message_user(request, exc.message, level=messages.ERROR)
        if done:
            modeladmin.message_user(request, f"{done} order(s) {verb}.", level=messages.SUCCESS)

    action.__name__ = f"order_{verb}"
    action.short_description = f"Mark selected orders {verb}"
    return action


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("reference", "user", "status", "total", "currency", "placed_at")
    list_filter = ("status",)
    search_fields = ("reference", "user__username", "user__email")
    inlines = [OrderLineInline, PaymentInline]
    actions = [
        _status_action(services.order_ship, "shipped"),
        _status_action(services.order_deliver, "delivered"),
        _status_action(services.order_cancel, "cancelled"),
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # orders change only through the status actions

    def has_delete_permission(self, request, obj=None):
        return False
