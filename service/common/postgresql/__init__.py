"""Django's PostgreSQL backend with a rate-limited health check (base.py); settings.py selects it."""
