"""accounts urls (placeholder until the app is built)."""

app_name = "accounts" if "urls" == "urls" else None
urlpatterns: list = []
