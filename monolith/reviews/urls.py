"""Review pages, mounted at /reviews/."""

from django.urls import path

from monolith.reviews import views
from servicekit import ids  # noqa: F401 - registers the <id:...> path converter

app_name = "reviews"

urlpatterns = [
    path("product/<id:product_id>/new/", views.review_create, name="create"),
    path("<id:review_id>/edit/", views.review_edit, name="edit"),
    path("<id:review_id>/delete/", views.review_delete, name="delete"),
]
