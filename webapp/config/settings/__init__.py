"""One settings module per environment: base, local, production, test (cookiecutter-django style)."""
