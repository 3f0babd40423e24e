"""API pagination: {"count", "next", "previous", "results"}, ?page= and ?page_size= (bounded)."""

from rest_framework.pagination import PageNumberPagination

from monolith.catalog.conf import catalog_settings


class CatalogPagination(PageNumberPagination):
    page_size_query_param = "page_size"

    @property
    def max_page_size(self) -> int:  # read per request so override_settings(CATALOG=...) applies
        return catalog_settings.API_MAX_PAGE_SIZE
