"""Reviews service app (label `reviews_service`): reviews and ratings, with the monolith's review and user ids."""
