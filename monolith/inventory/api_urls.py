"""inventory api urls (placeholder until the app is built)."""

app_name = "inventory" if "api_urls" == "urls" else None
urlpatterns: list = []
