"""orders api urls (placeholder until the app is built)."""

app_name = "orders" if "api_urls" == "urls" else None
urlpatterns: list = []
