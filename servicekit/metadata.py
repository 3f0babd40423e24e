"""What every API answers to OPTIONS (DEFAULT_METADATA_CLASS): DRF's simple metadata without the field listing.

DRF lists a view's fields by calling a generic view's get_serializer()/get_object(), which need serializer_class
and queryset; these views take explicit input and output serializers instead, so a staff OPTIONS request was a
500. The fields are in the OpenAPI schema; OPTIONS keeps the name, description, renders and parses.
"""

from __future__ import annotations

from rest_framework.metadata import SimpleMetadata


class ApiMetadata(SimpleMetadata):
    def determine_actions(self, request, view) -> dict:
        return {}
