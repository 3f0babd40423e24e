"""Admin for categories and products (search, list filters); every admin write goes through catalog.services."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from monolith.catalog import services
from monolith.catalog.models import Category, Product
from servicekit.errors import DomainError


def _add_domain_errors(form: forms.ModelForm, error: DomainError) -> None:
    fields = [field for field in error.details if field in form.fields]
    for field in fields:
        form.add_error(field, [str(message) for message in error.details[field]])
    if not fields:
        form.add_error(None, error.message)


class CategoryAdminForm(forms.ModelForm):
    class Meta:
        model = Category
        fields = ["name", "slug", "parent", "description"]

    def clean(self):
        cleaned = super().clean()
        try:
            services.category_parent_check(category=self.instance, parent=cleaned.get("parent"))
        except DomainError as exc:
            _add_domain_errors(self, exc)
        return cleaned


class ProductAdminForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = list(services.PRODUCT_FIELDS)

    def clean(self):
        cleaned = super().clean()
        if not self.errors:  # run the services' rules (currency, image URLs, decimals) as form errors
            try:
                services.product_fields_clean(data={f: cleaned[f] for f in services.PRODUCT_FIELDS if f in cleaned})
            except DomainError as exc:
                _add_domain_errors(self, exc)
        return cleaned


class ServiceWritesMixin:
    """Route admin saves and deletes through the services: same rules, one transaction each, events later."""

    def save_model(self, request, obj, form, change):
        data = {field: form.cleaned_data[field] for field in form.Meta.fields if field in form.cleaned_data}
        if change:
            saved = self.service_update(obj, {f: v for f, v in data.items() if f in form.changed_data})
        else:
            saved = self.service_create(data)
        obj.pk, obj.created_at, obj.updated_at = saved.pk, saved.created_at, saved.updated_at

    def delete_model(self, request, obj):
        try:
            self.service_delete(obj)
        except DomainError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)

    def delete_queryset(self, request, queryset):
        for obj in queryset.order_by("-pk"):  # children (higher ids in a seeded tree) before parents
            self.delete_model(request, obj)


@admin.register(Category)
class CategoryAdmin(ServiceWritesMixin, admin.ModelAdmin):
    form = CategoryAdminForm
    list_display = ["name", "slug", "parent", "updated_at"]
    list_filter = ["parent"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    list_select_related = ["parent"]

    def service_create(self, data):
        return services.category_create(**data)

    def service_update(self, obj, data):
        return services.category_update(category=obj, data=data)

    def service_delete(self, obj):
        return services.category_delete(category=obj)


@admin.register(Product)
class ProductAdmin(ServiceWritesMixin, admin.ModelAdmin):
    form = ProductAdminForm
    list_display = ["name", "sku", "price", "currency", "category", "is_active", "updated_at"]
    list_filter = ["is_active", "currency", "category"]
    search_fields = ["name", "sku", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    list_select_related = ["category"]
    raw_id_fields = ["category"]
    readonly_fields = ["created_at", "updated_at"]
    list_per_page = 50
    show_full_result_count = False  # COUNT(*) over 100k rows on every changelist page is wasted work
    actions = ["deactivate"]

    def service_create(self, data):
        return services.product_create(**data)

    def service_update(self, obj, data):
        return services.product_update(product=obj, data=data)

    def service_delete(self, obj):
        return services.product_delete(product=obj)

    @admin.action(description="Deactivate selected products (hide from the storefront)")
    def deactivate(self, request, queryset):
        for product in queryset.order_by("pk"):
            services.product_deactivate(product=product)
        self.message_user(request, f"{queryset.count()} product(s) deactivated.")
