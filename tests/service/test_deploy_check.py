"""`manage.py check --deploy` in the production configuration reports nothing: the environment
the application containers get from docker/compose.yaml, filled in from docker/.env.example with
the secrets an operator generates in place of its placeholders (as the file tells them to).

And the other way round: the embedded defaults (plain HTTP on localhost) are what --deploy
rightly warns about, so the test would notice if those warnings stopped being reported.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

from tests.docker.test_compose import ENV_EXAMPLE, compose_file, env_example

ROOT = Path(__file__).resolve().parents[2]
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^${}]*))?\}")


def _resolve(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation of ${NAME}, ${NAME:-default} and ${NAME:?message}, innermost first."""
    while True:
        match = _VARIABLE.search(value)
        if match is None:
            return value.replace("$$", "$")
        name, operator, word = match.groups()
        found = env.get(name, "")
        if not found and operator in (":-", "-"):
            found = word
        if not found and operator in (":?", "?"):
            raise AssertionError(f"compose would refuse to start: {name} is required ({word})")
        value = value[: match.start()] + found + value[match.end() :]


def production_environment(tmp_path: Path) -> dict[str, str]:
    dotenv = env_example()
    for key, value in dotenv.items():  # the placeholders, generated as docker/.env.example says
        if "change-me" in value:
            dotenv[key] = Fernet.generate_key().decode() if key == "FORGET_ENCRYPTION_KEY" else secrets.token_urlsafe(50)
    app_env = {name: _resolve(str(value), dotenv) for name, value in compose_file()["services"]["web"]["environment"].items()}
    keep = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    return {**keep, **app_env, "FORGET_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "service.config.settings", "FORGET_SIGNING_KEY": ""}


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean_in_the_production_configuration(tmp_path):
    env = production_environment(tmp_path)
    assert env["SECURE_SSL_REDIRECT"] == "true" and env["CACHE_URL"].startswith("redis://")  # compose's defaults, not the test's
    result = check_deploy(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout


def test_the_embedded_defaults_are_what_check_deploy_warns_about(tmp_path):
    env = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    result = check_deploy({**env, "FORGET_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "service.config.settings"})
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):  # what the attack run found
        assert warning in result.stdout + result.stderr, warning


def test_env_example_documents_the_security_settings():
    text = ENV_EXAMPLE.read_text()
    for name in ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_PROXY_SSL_HEADER"):
        assert re.search(rf"(?m)^{name}=", text), name
