"""Orders JSON API: order history, checkout from the cart, one order, cancel."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from monolith.accounts.selectors import address_default, address_get
from monolith.accounts.services import address_build
from monolith.cart.selectors import cart_get_for_request
from monolith.orders import selectors, services
from monolith.orders.serializers import OrderOutputSerializer, OrderPlaceInputSerializer
from monolith.orders.services import IDEMPOTENCY_KEY_PATTERN
from servicekit.errors import Conflict, ErrorSerializer


class OrderListCreateApi(GenericAPIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=OrderOutputSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(selectors.order_list(user=request.user).prefetch_related("payments"))
        return self.get_paginated_response(OrderOutputSerializer(page, many=True).data)

    @extend_schema(
        request=OrderPlaceInputSerializer,
        # 402 declined, 503 payment or inventory unavailable, 504 payment timed out (monolith.payments.errors)
        responses={201: OrderOutputSerializer, 402: ErrorSerializer, 503: ErrorSerializer, 504: ErrorSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                location=OpenApiParameter.HEADER,
                description="or idempotency_key in the body (one of them is required)",
            )
        ],
    )
    def post(self, request):
        serializer = OrderPlaceInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "address" in data:
            address = address_get(user=request.user, address_id=data["address"])
        elif "shipping_address" in data:
            address = address_build(user=request.user, **data["shipping_address"])
        else:
            address = address_default(user=request.user)
            if address is None:
                # a well-formed request the account's state refuses: no saved default address to ship to
                raise Conflict("A shipping address is required.", details={"address": ["Required."]})
        order = services.order_place(
            user=request.user,
            cart=cart_get_for_request(request=request),
            address=address,
            card_number=data["card_number"],
            idempotency_key=request.headers.get("Idempotency-Key") or data.get("idempotency_key"),
            expected_total=data.get("expected_total"),
        )
        # A replay with the same key answers like the first request did (201 with the same order).
        order = selectors.order_get(user=request.user, reference=order.reference)
        return Response(OrderOutputSerializer(order).data, status=status.HTTP_201_CREATED)


class OrderDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=OrderOutputSerializer)
    def get(self, request, reference: str):
        return Response(OrderOutputSerializer(selectors.order_get(user=request.user, reference=reference)).data)


class OrderCancelApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses=OrderOutputSerializer)
    def post(self, request, reference: str):
        order = services.order_cancel(order=selectors.order_get(user=request.user, reference=reference))
        return Response(OrderOutputSerializer(selectors.order_get(user=request.user, reference=order.reference)).data)


class OrderShipApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses=OrderOutputSerializer)
    def post(self, request, reference: str):
        order = services.order_ship(order=selectors.order_get(user=request.user, reference=reference))
        return Response(OrderOutputSerializer(selectors.order_get(user=request.user, reference=order.reference)).data)


class OrderDeliverApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses=OrderOutputSerializer)
    def post(self, request, reference: str):
        order = services.order_deliver(order=selectors.order_get(user=request.user, reference=reference))
        return Response(OrderOutputSerializer(selectors.order_get(user=request.user, reference=order.reference)).data)
