"""Admin for reviews (moderation: search, filter by rating); edits and deletes go through reviews.services."""

from django.contrib import admin

from monolith.reviews import services
from monolith.reviews.models import Review


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ["id", "product", "user", "rating", "title", "created_at"]
    list_filter = ["rating", "created_at"]
    search_fields = ["title", "body", "product__name", "product__sku", "user__username"]
    list_select_related = ["product", "user"]
    fields = ["product", "user", "rating", "title", "body", "created_at", "updated_at"]
    readonly_fields = ["product", "user", "created_at", "updated_at"]

    def has_add_permission(self, request) -> bool:  # reviews are written by customers on the storefront
        return False

    def save_model(self, request, obj, form, change):
        data = {field: form.cleaned_data[field] for field in services.REVIEW_FIELDS if field in form.changed_data}
        obj.updated_at = services.review_update(review=obj, data=data).updated_at

    def delete_model(self, request, obj):
        services.review_delete(review=obj)

    def delete_queryset(self, request, queryset):
        for review in queryset.order_by("pk"):
            services.review_delete(review=review)
