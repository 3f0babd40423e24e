"""API pagination: {"count", "next", "previous", "results"}, ?page= and ?page_size= (bounded), as the monolith's."""

from rest_framework.pagination import PageNumberPagination

from .conf import reviews_setting


class ReviewsPagination(PageNumberPagination):
    page_size_query_param = "page_size"

    @property
    def max_page_size(self) -> int:  # read per request so override_settings(REVIEWS=...) applies
        return reviews_setting("API_MAX_PAGE_SIZE")
