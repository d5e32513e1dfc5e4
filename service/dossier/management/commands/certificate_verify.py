"""`manage.py certificate_verify FILE [--public-key KEY_FILE]`: checks a downloaded certificate (JSON
or HTML) offline. Exit 0 when it is intact and signed by the trusted key; 1 with a one-line reason
when it is unreadable, altered, or signed by any other key."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from service.dossier import documents, signing


class Command(BaseCommand):
    help = "Verify a signed erasure certificate (JSON or HTML) offline; exit 1 if it is altered or signed by another key."

    def add_arguments(self, parser):
        parser.add_argument("file", help="The certificate as downloaded: .json or .html.")
        parser.add_argument(
            "--public-key",
            metavar="KEY_FILE",
            help="The key to trust: a file holding a PEM Ed25519 public key or the base64 of its 32 raw bytes "
            "(GET /api/v1/certificates/public-key). Default: the service's configured signing key.",
        )

    def handle(self, *args, file: str, public_key: str | None = None, **options):
        try:
            if public_key:
                trusted = signing.public_key_from_text(_read(Path(public_key), "public key file"), source=f"--public-key {public_key}")
                whose = "the key given with --public-key"
            else:
                trusted = signing.service_public_key(create=False)
                whose = "the service's signing key"
            content = Path(file).read_bytes() if Path(file).is_file() else None
            if content is None:
                raise signing.InvalidDocument(f"cannot read {file}: no such file")
            verified = documents.verify_file(content, trusted)
        except (signing.InvalidDocument, signing.SigningKeyError) as exc:
            raise CommandError(f"INVALID: {file}: {exc}", returncode=1) from None
        except OSError as exc:
            raise CommandError(f"INVALID: cannot read {file}: {exc.strerror}", returncode=1) from None
        verdict = "PASSED" if verified.passed else "did NOT pass"
        self.stdout.write(
            self.style.SUCCESS(f"VALID: certificate of request {verified.reference} ({verified.kind}), signed by key {verified.key_id} ({whose})")
        )
        self.stdout.write(f"  certified unit {verified.unit_id or '-'}; the certificate {verdict} its rules; issued {verified.issued_at or '-'}")


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise signing.SigningKeyError(f"cannot read the {what} {path}: {getattr(exc, 'strerror', None) or exc}") from None
