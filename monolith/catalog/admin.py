"""Admin for categories and products (search, list filters)."""

from django.contrib import admin

from monolith.catalog import services
from monolith.catalog.models import Category, Product


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "parent", "updated_at"]
    list_filter = ["parent"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    list_select_related = ["parent"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "sku", "price", "currency", "category", "is_active", "updated_at"]
    list_filter = ["is_active", "currency", "category"]
    search_fields = ["name", "sku", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    list_select_related = ["category"]
    raw_id_fields = ["category"]
    readonly_fields = ["created_at", "updated_at"]
    list_per_page = 50
    show_full_result_count = False  # COUNT(*) over 100k rows on every changelist page is wasted work

    # Admin edits go through the services like every other write (one transaction each, same rules).
    def save_model(self, request, obj, form, change):
        data = {field: form.cleaned_data[field] for field in services.PRODUCT_FIELDS if field in form.cleaned_data}
        if change:
            changed = {field: value for field, value in data.items() if field in form.changed_data}
            saved = services.product_update(product=obj, data=changed)
        else:
            saved = services.product_create(**data)
        obj.pk, obj.created_at, obj.updated_at = saved.pk, saved.created_at, saved.updated_at

    def delete_model(self, request, obj):
        services.product_delete(product=obj)
