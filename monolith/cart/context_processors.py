"""Template context: the cart badge in the site header."""

from monolith.cart.selectors import cart_get_for_request, cart_item_count


def cart_summary(request):
    if not hasattr(request, "session"):
        return {"cart_count": 0}
    return {"cart_count": cart_item_count(cart=cart_get_for_request(request=request))}
