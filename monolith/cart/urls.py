"""cart urls (placeholder until the app is built)."""

app_name = "cart" if "urls" == "urls" else None
urlpatterns: list = []
