"""catalog urls (placeholder until the app is built)."""

app_name = "catalog" if "urls" == "urls" else None
urlpatterns: list = []
