"""Cart admin: read-only view of carts and their lines (support looks, customers change them)."""

from __future__ import annotations

from django.contrib import admin

from monolith.cart.models import Cart, CartLine


class CartLineInline(admin.TabularInline):
    model = CartLine
    extra = 0
    readonly_fields = ("product", "quantity", "unit_price", "added_at")
    can_delete = False


@admin.register(Cart)
class CartAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "session_key", "updated_at")
    inlines = [CartLineInline]
    readonly_fields = ("user", "session_key", "created_at", "updated_at")

    def has_add_permission(self, request):
        return False
