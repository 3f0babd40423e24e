"""orders urls (placeholder until the app is built)."""

app_name = "orders" if "urls" == "urls" else None
urlpatterns: list = []
