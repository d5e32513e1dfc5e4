"""A request's compliance dossier (staff page) and its signed erasure certificates (docs/dossier.md)."""
