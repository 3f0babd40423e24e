"""reviews api urls (placeholder until the app is built)."""

app_name = "reviews" if "api_urls" == "urls" else None
urlpatterns: list = []
