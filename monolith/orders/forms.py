"""Checkout form: a saved address or a new one, the card number, and the hidden idempotency key and total."""

from __future__ import annotations

from django import forms

from monolith.accounts.models import Address

ADDRESS_FIELDS = ("name", "line1", "line2", "city", "postal_code", "country")


class CheckoutForm(forms.Form):
    address = forms.ModelChoiceField(
        queryset=Address.objects.none(), required=False, empty_label="A new address (below)", label="Ship to"
    )
    name = forms.CharField(max_length=120, required=False)
    line1 = forms.CharField(max_length=200, required=False, label="Address line 1")
    line2 = forms.CharField(max_length=200, required=False, label="Address line 2")
    city = forms.CharField(max_length=120, required=False)
    postal_code = forms.CharField(max_length=20, required=False)
    country = forms.CharField(max_length=2, required=False, help_text="Two-letter code, e.g. US")
    save_address = forms.BooleanField(required=False, initial=True, label="Save this address to my account")
    card_number = forms.CharField(
        max_length=32, widget=forms.TextInput(attrs={"autocomplete": "cc-number", "inputmode": "numeric"})
    )
    # One key per rendered form: submitting it twice (double click, reload) returns the same order.
    idempotency_key = forms.CharField(max_length=64, widget=forms.HiddenInput)
    expected_total = forms.DecimalField(max_digits=14, decimal_places=2, widget=forms.HiddenInput)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["address"].queryset = Address.objects.filter(user=user).order_by("-is_default", "id")

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("address"):
            for field in ("name", "line1", "city", "postal_code", "country"):
                if not cleaned.get(field):
                    self.add_error(field, "Required for a new address.")
        return cleaned

    def new_address_bound_fields(self) -> list:
        return [self[name] for name in (*ADDRESS_FIELDS, "save_address")]

    def new_address_fields(self) -> dict:
        return {field: self.cleaned_data.get(field) or "" for field in ADDRESS_FIELDS}
