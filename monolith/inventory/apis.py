"""Inventory JSON API: stock levels (read by anyone, set by staff) and reservations (staff/service calls)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from monolith.inventory import selectors, services
from monolith.inventory.serializers import (
    ReservationInputSerializer,
    ReservationOutputSerializer,
    StockFilterSerializer,
    StockOutputSerializer,
    StockSetInputSerializer,
    reservation_body,
)


class StockListApi(GenericAPIView):
    permission_classes = [AllowAny]

    @extend_schema(parameters=[StockFilterSerializer], responses=StockOutputSerializer(many=True))
    def get(self, request):
        filters = StockFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        product_ids = filters.validated_data.get("product")
        if product_ids is None:  # every row: paginated like the rest of the API
            page = self.paginate_queryset(selectors.stock_list())
            return self.get_paginated_response(StockOutputSerializer(page, many=True).data)
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

    @extend_schema(request=ReservationInputSerializer, responses={201: ReservationOutputSerializer})
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

    @extend_schema(request=None, responses=ReservationOutputSerializer)
    def post(self, request, reference: str):
        return Response(reservation_body(reference, services.stock_release(reference=reference)))


class ReservationConfirmApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses=ReservationOutputSerializer)
    def post(self, request, reference: str):
        return Response(reservation_body(reference, services.stock_confirm(reference=reference)))


class ReservationReturnApi(APIView):
    """Undo a reservation whatever its state (confirmed stock back on hand, active released); idempotent."""

    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses=ReservationOutputSerializer)
    def post(self, request, reference: str):
        return Response(reservation_body(reference, services.stock_return(reference=reference)))
