"""Template context: the cart badge (placeholder until the cart app is built)."""


def cart_summary(request):
    return {}
