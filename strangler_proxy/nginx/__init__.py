"""The nginx traffic plane: a config rendered from the route file, and a private nginx instance to run it."""
