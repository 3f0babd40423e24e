"""Inventory JSON API, the monolith's contract: stock levels (read by anyone, set by staff) and reservations."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from servicekit.errors import InvalidInput

from . import selectors, services
from .serializers import (
    ReservationInputSerializer,
    StockOutputSerializer,
    StockSetInputSerializer,
    reservation_body,
)


class StockListApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[OpenApiParameter("product", str, description="comma-separated product ids")],
        responses=StockOutputSerializer(many=True),
    )
    def get(self, request):
        raw = request.query_params.get("product")
        product_ids = None
        if raw is not None:
            try:
                product_ids = [int(part) for part in raw.split(",") if part.strip()]
            except ValueError:
                raise InvalidInput("product must be comma-separated ids.", details={"product": [raw]}) from None
            if not product_ids or len(product_ids) > 500:
                raise InvalidInput("Give 1 to 500 product ids.", details={"product": [raw]})
        if product_ids is None:  # every row: paginated like the rest of the API
            paginator = PageNumberPagination()
            page = paginator.paginate_queryset(selectors.stock_list(), request, view=self)
            return paginator.get_paginated_response(StockOutputSerializer(page, many=True).data)
        items = selectors.stock_list(product_ids=product_ids)
        # The same shape as a page, holding every requested product (at most 500).
        data = StockOutputSerializer(items, many=True).data
        return Response({"count": len(data), "next": None, "previous": None, "results": data})


class StockDetailApi(APIView):
    def get_permissions(self):
        return [IsAdminUser()] if self.request.method == "PUT" else [AllowAny()]

    @extend_schema(responses=StockOutputSerializer)
    def get(self, request, product_id: int):
        return Response(StockOutputSerializer(selectors.stock_get(product_id=product_id)).data)

    @extend_schema(request=StockSetInputSerializer, responses=StockOutputSerializer)
    def put(self, request, product_id: int):
        serializer = StockSetInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        item = services.stock_set(product_id=product_id, **serializer.validated_data)
        return Response(StockOutputSerializer(item).data)


class ReservationCreateApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=ReservationInputSerializer, responses={201: dict})
    def post(self, request):
        serializer = ReservationInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        reservations = services.stock_reserve(
            reference=data["reference"], lines=[(line["product"], line["quantity"]) for line in data["lines"]]
        )
        # A repeat with the same reference replays the first answer (same reservations, same status code).
        return Response(reservation_body(data["reference"], reservations), status=status.HTTP_201_CREATED)


class ReservationReleaseApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses=dict)
    def post(self, request, reference: str):
        return Response(reservation_body(reference, services.stock_release(reference=reference)))


class ReservationConfirmApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses=dict)
    def post(self, request, reference: str):
        return Response(reservation_body(reference, services.stock_confirm(reference=reference)))


class ReservationReturnApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses=dict)
    def post(self, request, reference: str):
        return Response(reservation_body(reference, services.stock_return(reference=reference)))
