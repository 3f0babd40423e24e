"""Cart JSON API: the visitor's cart (session or user), add/update/remove lines."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from monolith.cart import selectors, services
from monolith.cart.serializers import (
    CartItemAddInputSerializer,
    CartItemUpdateInputSerializer,
    CartOutputSerializer,
    cart_body,
)
from servicekit.errors import NotFound


def _cart_response(cart, *, status_code=status.HTTP_200_OK) -> Response:
    return Response(cart_body(selectors.cart_totals(cart=cart)), status=status_code)


class CartApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses=CartOutputSerializer)
    def get(self, request):
        return _cart_response(selectors.cart_get_for_request(request=request))


class CartItemsApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(request=CartItemAddInputSerializer, responses={201: CartOutputSerializer})
    def post(self, request):
        serializer = CartItemAddInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        cart = services.cart_get_or_create_for_request(request=request)
        services.cart_add_product(cart=cart, product_id=serializer.validated_data["product"],
                                  quantity=serializer.validated_data["quantity"])
        return _cart_response(cart, status_code=status.HTTP_201_CREATED)


class CartItemApi(APIView):
    permission_classes = [AllowAny]

    def _cart(self, request, product_id):
        cart = selectors.cart_get_for_request(request=request)
        if cart is None:
            raise NotFound("That product is not in the cart.", details={"product": product_id})
        return cart

    @extend_schema(request=CartItemUpdateInputSerializer, responses=CartOutputSerializer)
    def patch(self, request, product_id: int):
        serializer = CartItemUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        cart = self._cart(request, product_id)
        services.cart_update_line(cart=cart, product_id=product_id, quantity=serializer.validated_data["quantity"])
        return _cart_response(cart)

    @extend_schema(request=None, responses=CartOutputSerializer)
    def delete(self, request, product_id: int):
        cart = self._cart(request, product_id)
        services.cart_remove_line(cart=cart, product_id=product_id)
        return _cart_response(cart)
