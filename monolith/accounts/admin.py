"""Accounts admin: addresses (users are django.contrib.auth's own admin)."""

from django.contrib import admin

from monolith.accounts.models import Address


@admin.register(Address)
class AddressAdmin(admin.ModelAdmin):
    list_display = ("user", "name", "city", "country", "is_default")
    search_fields = ("user__username", "name", "city", "postal_code")
    raw_id_fields = ("user",)
