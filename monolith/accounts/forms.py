"""Accounts forms: sign-up and an address."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from monolith.accounts.models import Address


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=True)

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")


class AddressForm(forms.ModelForm):
    class Meta:
        model = Address
        fields = ("name", "line1", "line2", "city", "postal_code", "country", "is_default")
        labels = {"line1": "Address line 1", "line2": "Address line 2", "is_default": "Make this my default"}

    def clean_country(self):
        return self.cleaned_data["country"].strip().upper()  # "gb" is fine; the model wants "GB"
