"""cart api urls (placeholder until the app is built)."""

app_name = "cart" if "api_urls" == "urls" else None
urlpatterns: list = []
