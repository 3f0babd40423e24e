"""Accounts JSON API: who am I, and my addresses."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from monolith.accounts import selectors, services
from monolith.accounts.serializers import AddressInputSerializer, AddressOutputSerializer, MeOutputSerializer


class MeApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=MeOutputSerializer)
    def get(self, request):
        return Response(MeOutputSerializer(request.user).data)


class AddressListCreateApi(GenericAPIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=AddressOutputSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(selectors.address_list(user=request.user))
        return self.get_paginated_response(AddressOutputSerializer(page, many=True).data)

    @extend_schema(request=AddressInputSerializer, responses={201: AddressOutputSerializer})
    def post(self, request):
        serializer = AddressInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        address = services.address_create(user=request.user, **serializer.validated_data)
        return Response(AddressOutputSerializer(address).data, status=status.HTTP_201_CREATED)
