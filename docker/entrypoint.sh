#!/bin/sh
# Entrypoint of every application image (web, gateway, gpu-worker): refuses to start a container on
# the embedded development defaults by accident, checks that the data folders are writable by the
# unprivileged user, then runs the command (gunicorn, celery, manage.py ...) as PID 1's child of
# `init: true` (compose) or as PID 1 itself.
set -eu

fail() { echo "forget-entrypoint: $*" >&2; exit 64; }

# settings.py falls back to a public development key and to SQLite when these are unset. That is the
# embedded mode for bin/demo, never what a container should run on; nor are the placeholders of
# docker/.env.example. FORGET_SKIP_ENV_CHECK=1 lifts both checks (a throw-away
# `docker run ... manage.py check`, say).
if [ "${FORGET_SKIP_ENV_CHECK:-0}" != 1 ]; then
  for var in SECRET_KEY PII_HASH_KEY FORGET_ENCRYPTION_KEY DATABASE_URL CELERY_BROKER_URL; do
    eval "value=\${$var:-}"
    # shellcheck disable=SC2154  # value is set by the eval above
    case "$value" in
      "") fail "$var is not set: copy docker/.env.example to docker/.env and fill it in (the embedded defaults are for bin/demo only)" ;;
      *change-me*) fail "$var still holds the placeholder of docker/.env.example: generate a real value (docs/docker.md)" ;;
    esac
  done
  # The certificate signing key may come from FORGET_SIGNING_KEY_FILE instead; a placeholder never passes.
  case "${FORGET_SIGNING_KEY:-}" in
    *change-me*) [ -n "${FORGET_SIGNING_KEY_FILE:-}" ] || fail "FORGET_SIGNING_KEY still holds the placeholder of docker/.env.example: generate a real value (docs/dossier.md)" ;;
  esac
fi

# Named volumes take the image's ownership (uid 10001) on first use; bind mounts keep the host's.
for dir in "${FORGET_VAR_DIR:-/var/lib/forget}"; do
  mkdir -p "$dir" 2>/dev/null || true
  [ -w "$dir" ] || fail "$dir is not writable by uid $(id -u); on a bind mount run: chown -R $(id -u):$(id -g) <host folder>"
done

exec "$@"
