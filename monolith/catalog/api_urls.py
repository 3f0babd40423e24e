"""catalog api urls (placeholder until the app is built)."""

app_name = "catalog" if "api_urls" == "urls" else None
urlpatterns: list = []
