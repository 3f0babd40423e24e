"""Review form for the product page and the edit page."""

from django import forms

from monolith.reviews.models import RATING_MAX, RATING_MIN

RATING_CHOICES = [(n, f"{n} - {'★' * n}") for n in range(RATING_MAX, RATING_MIN - 1, -1)]


class ReviewForm(forms.Form):
    rating = forms.TypedChoiceField(choices=RATING_CHOICES, coerce=int, initial=RATING_MAX)
    title = forms.CharField(max_length=200, required=False)
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=10_000, required=False, label="Review")
