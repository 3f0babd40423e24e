"""reviews urls (placeholder until the app is built)."""

app_name = "reviews" if "urls" == "urls" else None
urlpatterns: list = []
