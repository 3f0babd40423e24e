"""Review pages: post a review from the product page, edit or delete your own."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from monolith.catalog.selectors import product_get
from monolith.reviews import selectors, services
from monolith.reviews.forms import ReviewForm
from servicekit.errors import DomainError, NotFound


def _product_reviews_url(product) -> str:
    return reverse("catalog:product-detail", args=[product.slug]) + "#reviews"


def _own_review(request, review_id: int):
    try:
        review = selectors.review_get(review_id=review_id)
    except NotFound:
        raise Http404("No such review.") from None
    if review.user_id != request.user.id and not request.user.is_staff:
        raise PermissionDenied("Only the author or staff may change this review.")
    return review


@login_required
@require_POST
def review_create(request, product_id: int):
    try:
        product = product_get(product_id=product_id, active_only=True)
    except NotFound:
        raise Http404("No such product.") from None
    form = ReviewForm(request.POST)
    if form.is_valid():
        try:
            services.review_create(product=product, user=request.user, **form.cleaned_data)
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Thanks, your review is posted.")
    else:
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
    return redirect(_product_reviews_url(product))


@login_required
@require_http_methods(["GET", "POST"])
def review_edit(request, review_id: int):
    review = _own_review(request, review_id)
    if request.method == "POST":
        form = ReviewForm(request.POST)
        if form.is_valid():
            try:
                services.review_update(review=review, data=form.cleaned_data)
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, "Your review is updated.")
                return redirect(_product_reviews_url(review.product))
    else:
        form = ReviewForm(initial={"rating": review.rating, "title": review.title, "body": review.body})
    return render(request, "reviews/review_edit.html", {"form": form, "review": review})


@login_required
@require_http_methods(["GET", "POST"])
def review_delete(request, review_id: int):
    review = _own_review(request, review_id)
    if request.method == "POST":
        services.review_delete(review=review)
        messages.success(request, "The review is deleted.")
        return redirect(_product_reviews_url(review.product))
    return render(request, "reviews/review_confirm_delete.html", {"review": review})
