"""URLs of test_not_owner.py: a DRF view and a plain Django view that write the product aggregate."""

from django.http import JsonResponse
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from strangler_sync.ownership import ownership_require_owner


class DrfWrite(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def post(self, request):
        ownership_require_owner(aggregate_type="product")
        return Response({"written": True})


def plain_write(request):
    ownership_require_owner(aggregate_type="product")
    return JsonResponse({"written": True})


urlpatterns = [path("drf/", DrfWrite.as_view()), path("plain/", plain_write)]
