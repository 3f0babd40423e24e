"""Review JSON API, the monolith's contract: thin views over selectors and services."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from servicekit.errors import ErrorSerializer

from . import selectors, services
from .pagination import ReviewsPagination
from .permissions import IsAuthorOrStaffOrReadOnly
from .serializers import (
    RatingSummarySerializer,
    ReviewCreateSerializer,
    ReviewFilterSerializer,
    ReviewOutputSerializer,
    ReviewUpdateSerializer,
)

# Who the customer is, the proxy resolved once at the edge (servicekit.identity.EdgeIdentityAuthentication).


class ReviewListApi(GenericAPIView):
    permission_classes = [IsAuthorOrStaffOrReadOnly]
    pagination_class = ReviewsPagination
    serializer_class = ReviewOutputSerializer

    @extend_schema(
        operation_id="reviews_list",
        parameters=[ReviewFilterSerializer],
        responses=ReviewOutputSerializer(many=True),
        tags=["reviews"],
    )
    def get(self, request):
        filters = ReviewFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(selectors.review_list(product_id=filters.validated_data.get("product")))
        return self.get_paginated_response(ReviewOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="reviews_create",
        request=ReviewCreateSerializer,
        responses={201: ReviewOutputSerializer, 503: ErrorSerializer},
        tags=["reviews"],
    )
    def post(self, request):
        body = ReviewCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        review = services.review_create(user=request.user, **body.validated_data)
        return Response(ReviewOutputSerializer(review).data, status=status.HTTP_201_CREATED)


class ReviewDetailApi(GenericAPIView):
    permission_classes = [IsAuthorOrStaffOrReadOnly]
    serializer_class = ReviewOutputSerializer

    def _review(self, request, review_id: int):
        review = selectors.review_get(review_id=review_id)
        self.check_object_permissions(request, review)
        return review

    @extend_schema(operation_id="reviews_retrieve", responses=ReviewOutputSerializer, tags=["reviews"])
    def get(self, request, review_id: int):
        return Response(ReviewOutputSerializer(self._review(request, review_id)).data)

    @extend_schema(
        operation_id="reviews_partial_update",
        request=ReviewUpdateSerializer,
        responses={200: ReviewOutputSerializer, 503: ErrorSerializer},
        tags=["reviews"],
    )
    def patch(self, request, review_id: int):
        review = self._review(request, review_id)
        body = ReviewUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        review = services.review_update(review=review, data=dict(body.validated_data))
        return Response(ReviewOutputSerializer(review).data)

    @extend_schema(operation_id="reviews_destroy", responses={204: None, 503: ErrorSerializer}, tags=["reviews"])
    def delete(self, request, review_id: int):
        services.review_delete(review=self._review(request, review_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProductRatingApi(GenericAPIView):
    permission_classes = [AllowAny]
    serializer_class = RatingSummarySerializer

    @extend_schema(operation_id="products_rating_retrieve", responses=RatingSummarySerializer, tags=["reviews"])
    def get(self, request, product_id: int):
        product = selectors.product_get(product_id=product_id, active_only=not request.user.is_staff)
        average, count = selectors.product_rating_summary(product_id=product.id)
        return Response(RatingSummarySerializer({"product": product.id, "average": average, "count": count}).data)
