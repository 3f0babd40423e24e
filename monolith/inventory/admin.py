"""Inventory admin: stock levels (edited through inventory.services) and reservations (read-only)."""

from __future__ import annotations

from django.contrib import admin, messages

from monolith.inventory import services
from monolith.inventory.models import Reservation, StockItem
from servicekit.errors import DomainError


@admin.register(StockItem)
class StockItemAdmin(admin.ModelAdmin):
    list_display = ("product", "quantity_on_hand", "quantity_reserved", "quantity_available", "updated_at")
    search_fields = ("product__sku", "product__name")
    raw_id_fields = ("product",)
    readonly_fields = ("quantity_reserved", "updated_at")

    def save_model(self, request, obj, form, change):
        # Through the service so the row lock, the reserved check and (later) event publishing all apply.
        try:
            item = services.stock_set(product_id=obj.product_id, quantity_on_hand=obj.quantity_on_hand)
            obj.pk, obj.quantity_reserved = item.pk, item.quantity_reserved
        except DomainError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = ("reference", "product", "quantity", "status", "created_at", "updated_at")
    list_filter = ("status",)
    search_fields = ("reference",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
