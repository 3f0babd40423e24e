"""Admin for reviews (moderation: search, filter by rating)."""

from django.contrib import admin

from monolith.reviews.models import Review


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ["id", "product", "user", "rating", "title", "created_at"]
    list_filter = ["rating", "created_at"]
    search_fields = ["title", "body", "product__name", "product__sku", "user__username"]
    raw_id_fields = ["product", "user"]
    list_select_related = ["product", "user"]
    readonly_fields = ["created_at", "updated_at"]
