"""Accounts pages under /accounts/."""

from django.urls import path

from monolith.accounts import views
from servicekit import ids  # noqa: F401 - registers the <id:...> path converter

app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
    path("profile/", views.profile, name="profile"),
    path("addresses/<id:address_id>/default/", views.address_make_default, name="address-default"),
    path("addresses/<id:address_id>/delete/", views.address_remove, name="address-delete"),
]
