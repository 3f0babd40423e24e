"""accounts api urls (placeholder until the app is built)."""

app_name = "accounts" if "api_urls" == "urls" else None
urlpatterns: list = []
