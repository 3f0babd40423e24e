"""inventory urls (placeholder until the app is built)."""

app_name = "inventory" if "urls" == "urls" else None
urlpatterns: list = []
