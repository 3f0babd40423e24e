"""API pagination: {"count", "next", "previous", "results"}, ?page= and ?page_size= (bounded)."""

from rest_framework.pagination import PageNumberPagination

from .conf import catalog_setting


class CatalogPagination(PageNumberPagination):
    page_size_query_param = "page_size"

    @property
    def max_page_size(self) -> int:  # read per request so override_settings(CATALOG_SERVICE=...) applies
        return catalog_setting("API_MAX_PAGE_SIZE")
