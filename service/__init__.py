"""Django project of the forget service. Nothing here imports torch."""
