"""Catalog JSON API: thin views over catalog.selectors (reads) and catalog.services (staff writes)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from monolith.catalog import selectors, services
from monolith.catalog.pagination import CatalogPagination
from monolith.catalog.permissions import IsStaffOrReadOnly
from monolith.catalog.serializers import (
    CategoryInputSerializer,
    CategoryOutputSerializer,
    ProductFilterSerializer,
    ProductInputSerializer,
    ProductOutputSerializer,
)

# PUT replaces the resource: optional fields left out go back to these.
_PRODUCT_PUT_DEFAULTS = {"description": "", "is_active": True, "images": [], "category": None}


def _is_staff(request) -> bool:
    return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class ProductListApi(GenericAPIView):
    permission_classes = [IsStaffOrReadOnly]
    pagination_class = CatalogPagination
    serializer_class = ProductOutputSerializer

    @extend_schema(
        operation_id="products_list",
        parameters=[ProductFilterSerializer],
        responses=ProductOutputSerializer(many=True),
        tags=["catalog"],
    )
    def get(self, request):
        filters = ProductFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        products = selectors.product_list(**filters.selector_kwargs(staff=_is_staff(request)))
        page = self.paginate_queryset(products)
        return self.get_paginated_response(ProductOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="products_create",
        request=ProductInputSerializer,
        responses={201: ProductOutputSerializer},
        tags=["catalog"],
    )
    def post(self, request):
        body = ProductInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        product = services.product_create(**body.validated_data)
        return Response(ProductOutputSerializer(product).data, status=status.HTTP_201_CREATED)


class ProductDetailApi(GenericAPIView):
    permission_classes = [IsStaffOrReadOnly]
    serializer_class = ProductOutputSerializer

    def _product(self, request, product_id: int):
        return selectors.product_get(product_id=product_id, active_only=not _is_staff(request))

    @extend_schema(operation_id="products_retrieve", responses=ProductOutputSerializer, tags=["catalog"])
    def get(self, request, product_id: int):
        return Response(ProductOutputSerializer(self._product(request, product_id)).data)

    @extend_schema(
        operation_id="products_update",
        request=ProductInputSerializer,
        responses=ProductOutputSerializer,
        tags=["catalog"],
    )
    def put(self, request, product_id: int):
        product = self._product(request, product_id)
        body = ProductInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = {**_PRODUCT_PUT_DEFAULTS, **body.validated_data}
        product = services.product_update(product=product, data=data)
        return Response(ProductOutputSerializer(product).data)

    @extend_schema(
        operation_id="products_partial_update",
        request=ProductInputSerializer(partial=True),
        responses=ProductOutputSerializer,
        tags=["catalog"],
    )
    def patch(self, request, product_id: int):
        product = self._product(request, product_id)
        body = ProductInputSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        # With partial=True DRF still fills declared defaults; only keys the client sent change.
        data = {key: value for key, value in body.validated_data.items() if key in request.data}
        product = services.product_update(product=product, data=data)
        return Response(ProductOutputSerializer(product).data)

    @extend_schema(operation_id="products_destroy", responses={204: None}, tags=["catalog"])
    def delete(self, request, product_id: int):
        services.product_delete(product=self._product(request, product_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class CategoryListApi(GenericAPIView):
    permission_classes = [IsStaffOrReadOnly]
    pagination_class = CatalogPagination
    serializer_class = CategoryOutputSerializer

    @extend_schema(operation_id="categories_list", responses=CategoryOutputSerializer(many=True), tags=["catalog"])
    def get(self, request):
        page = self.paginate_queryset(selectors.category_list())
        return self.get_paginated_response(CategoryOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="categories_create",
        request=CategoryInputSerializer,
        responses={201: CategoryOutputSerializer},
        tags=["catalog"],
    )
    def post(self, request):
        body = CategoryInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        category = services.category_create(**body.validated_data)
        return Response(CategoryOutputSerializer(category).data, status=status.HTTP_201_CREATED)


class CategoryDetailApi(GenericAPIView):
    permission_classes = [IsStaffOrReadOnly]
    serializer_class = CategoryOutputSerializer

    @extend_schema(operation_id="categories_retrieve", responses=CategoryOutputSerializer, tags=["catalog"])
    def get(self, request, category_id: int):
        return Response(CategoryOutputSerializer(selectors.category_get(category_id=category_id)).data)

    def _update(self, request, category_id: int, *, partial: bool):
        category = selectors.category_get(category_id=category_id)
        body = CategoryInputSerializer(data=request.data, partial=partial)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        if not partial:  # PUT replaces: omitted optional fields are reset
            data = {"parent": None, "description": "", **data}
        category = services.category_update(category=category, data=data)
        return Response(CategoryOutputSerializer(category).data)

    @extend_schema(
        operation_id="categories_update",
        request=CategoryInputSerializer,
        responses=CategoryOutputSerializer,
        tags=["catalog"],
    )
    def put(self, request, category_id: int):
        return self._update(request, category_id, partial=False)

    @extend_schema(
        operation_id="categories_partial_update",
        request=CategoryInputSerializer(partial=True),
        responses=CategoryOutputSerializer,
        tags=["catalog"],
    )
    def patch(self, request, category_id: int):
        return self._update(request, category_id, partial=True)

    @extend_schema(operation_id="categories_destroy", responses={204: None}, tags=["catalog"])
    def delete(self, request, category_id: int):
        services.category_delete(category=selectors.category_get(category_id=category_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
