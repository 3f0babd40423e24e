"""Review pages, mounted at /reviews/."""

from django.urls import path

from monolith.reviews import views

app_name = "reviews"

urlpatterns = [
    path("product/<int:product_id>/new/", views.review_create, name="create"),
    path("<int:review_id>/edit/", views.review_edit, name="edit"),
    path("<int:review_id>/delete/", views.review_delete, name="delete"),
]
