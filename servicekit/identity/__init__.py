"""Identity at the edge: the monolith resolves who is asking once, services trust a short-lived signed identity.

* ``servicekit.identity.views``: the monolith's identity endpoint (``path("sync/identity/", ...)``). For whatever
  credentials the monolith's DRF authentication classes accept (session cookie, HTTP Basic, API tokens) it answers
  a JWT (HS256, PyJWT) for one audience (a service); what the monolith refuses is signed as a refusal (status,
  code, message) so the service answers exactly what the monolith would.
* Both proxy planes call it for requests going to a service that gets identity, strip any identity header a
  client sent, and forward the signed one (``strangler_proxy.identity``; nginx: ``auth_request``).
* ``servicekit.identity.authentication.EdgeIdentityAuthentication``: the DRF class a service uses instead of
  asking the monolith per request; ``request.user`` is an ``IdentityUser`` (no row).

Add ``"servicekit.identity"`` to INSTALLED_APPS (its system checks report a missing key or audience) and set
``STRANGLER_IDENTITY`` (``servicekit.identity.conf``); the key comes from ``$STRANGLER_IDENTITY_KEY``.
"""
