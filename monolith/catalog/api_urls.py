"""Catalog API routes, included under /api/ (the resource paths an extracted catalog service takes over)."""

from django.urls import path

from monolith.catalog import apis
from servicekit import ids  # noqa: F401 - registers the <id:...> path converter

urlpatterns = [
    path("products/", apis.ProductListApi.as_view(), name="catalog-api-product-list"),
    path("products/<id:product_id>/", apis.ProductDetailApi.as_view(), name="catalog-api-product-detail"),
    path("categories/", apis.CategoryListApi.as_view(), name="catalog-api-category-list"),
    path("categories/<id:category_id>/", apis.CategoryDetailApi.as_view(), name="catalog-api-category-detail"),
]
