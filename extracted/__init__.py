"""Services carved out of the monolith, each its own Django project with its own database."""
