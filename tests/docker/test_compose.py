"""The production compose file (docker/compose.yaml) and its images (docker/Dockerfile).

No docker engine is needed. With a Docker Compose v2 CLI on the machine (`docker compose`, or a
standalone `docker-compose` of version 2 or later), `docker compose config` validates the file against
the Compose specification and resolves it with docker/.env.example; without one those tests are
skipped. The structural checks read the YAML with PyYAML and always run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (it normally comes with transformers)")

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
GPU_GATEWAY = DOCKER / "compose.gpu-gateway.yaml"
TWO_GPUS = DOCKER / "compose.two-gpus.yaml"
OVERRIDES = (GPU_GATEWAY, TWO_GPUS)
ENV_EXAMPLE = DOCKER / ".env.example"
DOCKERFILE = DOCKER / "Dockerfile"
SETTINGS = ROOT / "service" / "config" / "settings.py"

APP_SERVICES = ("migrate", "web", "worker", "gpu-worker", "beat", "gateway")
# Settings that settings.py reads but the compose file deliberately does not pass through.
NOT_PASSED = {
    "FORGET_VAR_DIR": "fixed in the images (/var/lib/forget)",
    "CELERY_RESULT_BACKEND": "tasks report through the job rows; no result backend",
    "ADAPTERS_STORE_ROOT": "used only when ADAPTERS_STORE_URL is empty; compose always sets the URL",
}


# --- helpers --------------------------------------------------------------------------------------


class ComposeLoader(yaml.SafeLoader):
    """PyYAML's safe loader plus Compose's merge tags (!override, !reset), read as plain values."""


for _tag in ("!override", "!reset"):
    ComposeLoader.add_constructor(_tag, lambda loader, node: (
        loader.construct_sequence(node, deep=True) if isinstance(node, yaml.SequenceNode)
        else loader.construct_mapping(node, deep=True) if isinstance(node, yaml.MappingNode)
        else loader.construct_scalar(node)))


def load(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=ComposeLoader)


@cache
def compose_file() -> dict:
    return load(COMPOSE)


def service(name: str) -> dict:
    return compose_file()["services"][name]


def command_of(name: str) -> list[str]:
    command = service(name)["command"]
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def option(argv: list[str], *names: str) -> str | None:
    """The value of a command-line option, written `--name value` or `--name=value`."""
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"docker/.env.example: not a KEY=value line: {line!r}"
            values[key.strip()] = value
    return values


def interpolated_names(text: str) -> set[str]:
    """Variables that a compose file interpolates: ${NAME}, ${NAME:-default}, ${NAME:?message}, nested
    ones; not in comments, not the escaped $${NAME} that the container's shell expands."""
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", code.replace("$$", "")))


def dockerfile_stage(target: str) -> str:
    """The text of one build stage of docker/Dockerfile."""
    stages = re.split(r"(?m)^FROM ", DOCKERFILE.read_text())
    for stage in stages[1:]:
        if re.match(rf"\S+ AS {re.escape(target)}\s*$", stage.splitlines()[0]):
            return "FROM " + stage
    raise AssertionError(f"docker/Dockerfile has no stage {target!r}")


def stage_parent(target: str) -> str:
    return dockerfile_stage(target).split()[1]


def depends_on(name: str) -> dict:
    deps = service(name).get("depends_on", {})
    return {dep: {"condition": "service_started"} for dep in deps} if isinstance(deps, list) else deps


# --- the services and their commands ------------------------------------------------------------------


def test_every_process_of_the_production_shape_is_a_service():
    assert set(compose_file()["services"]) >= {
        "postgres", "redis", "migrate", "web", "worker", "gpu-worker", "beat", "gateway", "proxy",
    }


def test_gpu_worker_takes_one_job_at_a_time_from_the_gpu_queue_on_a_reserved_gpu():
    argv = command_of("gpu-worker")
    assert argv[:4] == ["celery", "-A", "service.config", "worker"]
    assert option(argv, "-Q", "--queues") == "gpu"
    assert option(argv, "-c", "--concurrency") == "1"
    assert option(argv, "--prefetch-multiplier") == "1"
    devices = service("gpu-worker")["deploy"]["resources"]["reservations"]["devices"]
    assert [(d["driver"], d["count"], d["capabilities"]) for d in devices] == [("nvidia", 1, ["gpu"])]
    # docker stop hands the running job back to Redis at once instead of leaving it invisible for
    # the visibility timeout (cold shutdown restores unacknowledged messages).
    assert service("gpu-worker")["environment"]["REMAP_SIGTERM"] == "SIGQUIT"


def test_two_gpu_override_puts_each_worker_on_its_own_device():
    services = load(TWO_GPUS)["services"]
    devices = [svc["deploy"]["resources"]["reservations"]["devices"] for svc in services.values()]
    assert all(len(d) == 1 and d[0]["driver"] == "nvidia" and "count" not in d[0] for d in devices)
    ids = [tuple(d[0]["device_ids"]) for d in devices]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert "!override" in TWO_GPUS.read_text()  # replaces the base file's `count: 1` instead of adding to it


def test_gpu_worker_image_is_a_cuda_image_with_the_cuda_build_of_torch():
    assert service("gpu-worker")["build"]["target"] == "gpu-worker"
    base = dockerfile_stage("gpu-base")
    assert re.search(r"(?m)^ARG CUDA_IMAGE=nvidia/cuda:[\d.]+-(cudnn-)?runtime-", DOCKERFILE.read_text())
    assert re.search(r"--index-url \"\$\{TORCH_CUDA_INDEX\}\"", base)
    assert re.search(r"(?m)^ARG TORCH_CUDA_INDEX=https://download\.pytorch\.org/whl/cu\d+$", DOCKERFILE.read_text())
    # requirements.txt pins the CPU build; the image drops that line and fails the build unless
    # torch still has CUDA compiled in afterwards.
    assert "requirements-no-torch.txt" in base and "torch.version.cuda is None" in base


def test_torch_version_of_the_images_is_the_pin_of_requirements_txt():
    pinned = re.search(r"(?m)^torch==(\S+)$", (ROOT / "requirements.txt").read_text()).group(1)
    assert re.search(rf"(?m)^ARG TORCH_VERSION={re.escape(pinned)}$", DOCKERFILE.read_text())
    assert env_example()["TORCH_VERSION"] == pinned
    assert f"${{TORCH_VERSION:-{pinned}}}" in COMPOSE.read_text()


def test_other_processes_run_the_commands_of_docs_running_md():
    web = command_of("web")
    assert web[:2] == ["gunicorn", "service.config.wsgi:application"]
    assert option(web, "--bind", "-b").endswith(":8000")
    assert command_of("migrate") == ["python", "manage.py", "migrate", "--noinput"]
    worker = command_of("worker")
    assert worker[:4] == ["celery", "-A", "service.config", "worker"] and option(worker, "-Q", "--queues") == "default"
    assert command_of("beat")[:4] == ["celery", "-A", "service.config", "beat"]
    gateway = command_of("gateway")
    assert gateway[:3] == ["python", "manage.py", "run_gateway"] and option(gateway, "--port") == "8100" and option(gateway, "--host") == "0.0.0.0"
    # uvicorn (the default server) finishes the calls in flight on SIGTERM, within the stop grace period.
    assert float(option(gateway, "--graceful-timeout")) < int(service("gateway")["stop_grace_period"].rstrip("s"))


def test_one_shot_migrate_runs_first_and_everything_on_the_database_waits_for_it():
    assert depends_on("migrate")["postgres"]["condition"] == "service_healthy"
    assert service("migrate").get("restart", "no") == "no"
    on_database = [name for name, svc in compose_file()["services"].items() if "DATABASE_URL" in (svc.get("environment") or {})]
    assert set(on_database) >= set(APP_SERVICES)
    for name in on_database:
        if name != "migrate":
            assert depends_on(name).get("migrate", {}).get("condition") == "service_completed_successfully", name


def test_postgres_and_redis_are_durable_and_healthchecked():
    postgres, redis = service("postgres"), service("redis")
    assert re.match(r"postgres:16([.-]|$)", postgres["image"])
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    argv = [str(a) for a in redis["command"]]
    assert option(argv, "--appendonly") == "yes"
    assert option(argv, "--maxmemory-policy") == "noeviction"
    assert any(str(v).endswith(":/data") for v in redis["volumes"])
    assert "redis-cli" in " ".join(redis["healthcheck"]["test"])
    for name in APP_SERVICES:
        if name != "migrate":
            assert depends_on(name)["redis"]["condition"] == "service_healthy", name


def test_web_and_gateway_have_health_checks():
    for name in ("web", "gateway", "proxy"):
        assert service(name)["healthcheck"]["test"], name


def test_adapter_store_and_model_directory_are_shared_volumes():
    env = service("web")["environment"]
    assert "file:///data/adapters" in env["ADAPTERS_STORE_URL"]
    assert env_example()["ADAPTERS_STORE_URL"] == "file:///data/adapters"
    model_dir = env_example()["BASE_MODEL_DIR"]
    for name in ("gpu-worker", "gateway"):
        mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in service(name)["volumes"]}
        assert mounts.get("/data/adapters") == "adapters", name
        assert any(model_dir.startswith(target + "/") and source == "models" for target, source in mounts.items()), name
    assert {"adapters", "models", "pgdata", "redisdata"} <= set(compose_file()["volumes"])


def test_application_images_run_as_a_non_root_user():
    for target in ("web", "gateway", "gpu-worker", "gateway-gpu"):
        users = re.findall(r"(?m)^USER\s+(\S+)", dockerfile_stage(target))
        assert users and users[-1].split(":")[0] not in ("root", "0"), target
    built = {svc["build"]["target"] for svc in compose_file()["services"].values() if "build" in svc}
    assert built == {"web", "gateway", "gpu-worker", "proxy"}
    assert "nginx-unprivileged" in DOCKERFILE.read_text()
    assert stage_parent("gpu-worker") == "app-gpu" and stage_parent("app-gpu") == "gpu-base"


# --- the environment -----------------------------------------------------------------------------------


def test_every_compose_variable_is_documented_in_env_example_and_nothing_else_is():
    used = set().union(*(interpolated_names(path.read_text()) for path in (COMPOSE, *OVERRIDES)))
    documented = set(env_example())
    assert sorted(used - documented) == [], "used in docker/compose*.yaml but missing from docker/.env.example"
    assert sorted(documented - used) == [], "in docker/.env.example but used by no compose file"


def test_every_setting_of_settings_py_reaches_the_application_containers():
    read = set(re.findall(r"""\benv(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]*)["']""", SETTINGS.read_text()))
    assert "DATABASE_URL" in read  # the pattern still matches how settings.py reads the environment
    passed = set(service("web")["environment"])
    missing = sorted(read - passed - set(NOT_PASSED))
    assert missing == [], f"settings.py reads {missing}: add them to x-app-env in docker/compose.yaml and to docker/.env.example"


def test_env_example_holds_placeholders_not_secrets():
    env = env_example()
    for key in ("SECRET_KEY", "FORGET_ENCRYPTION_KEY", "PII_HASH_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        assert "change-me" in env[key], key  # the entrypoint refuses to start on these
    assert "change-me" in (DOCKER / "entrypoint.sh").read_text()


# --- docker compose config (needs the Compose v2 CLI, not an engine) -------------------------------------


@cache
def compose_cli() -> tuple[str, ...] | None:
    candidates = []
    if shutil.which("docker"):
        candidates.append(("docker", "compose"))
    if shutil.which("docker-compose"):
        candidates.append(("docker-compose",))
    for cli in candidates:
        try:
            out = subprocess.run([*cli, "version", "--short"], capture_output=True, text=True, timeout=30, env=clean_env())
        except (OSError, subprocess.TimeoutExpired):
            continue
        major = re.match(r"v?(\d+)\.", out.stdout.strip())
        if out.returncode == 0 and major and int(major.group(1)) >= 2:  # v1 (docker-compose 1.x) predates the spec
            return cli
    return None


def clean_env() -> dict[str, str]:
    """The shell's own DATABASE_URL, SECRET_KEY ... would override the env file: pass none of them."""
    keep = ("PATH", "HOME", "DOCKER_CONFIG", "TMPDIR")
    return {key: os.environ[key] for key in keep if key in os.environ}


def compose(*args: str, files=(COMPOSE,), env_file=ENV_EXAMPLE) -> subprocess.CompletedProcess:
    cli = compose_cli()
    if cli is None:
        pytest.skip("no Docker Compose v2 CLI here (`docker compose version` fails and no docker-compose >= 2): "
                    "docker/compose.yaml is checked structurally only")
    file_args = [arg for path in files for arg in ("-f", str(path))]
    return subprocess.run([*cli, *file_args, "--env-file", str(env_file), *args],
                          capture_output=True, text=True, timeout=60, env=clean_env(), cwd=ROOT)


def test_compose_config_validates_with_env_example():
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("override", OVERRIDES, ids=lambda path: path.name)
def test_compose_config_validates_with_each_override(override):
    result = compose("config", "-q", files=(COMPOSE, override))
    assert result.returncode == 0, result.stderr


def test_two_gpu_override_resolves_to_one_device_per_worker():
    result = compose("config", "--format", "json", files=(COMPOSE, TWO_GPUS))
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    workers = {name: svc for name, svc in services.items() if "gpu" in (svc.get("command") or [])}
    devices = {name: svc["deploy"]["resources"]["reservations"]["devices"] for name, svc in workers.items()}
    assert devices == {
        "gpu-worker": [{"capabilities": ["gpu"], "driver": "nvidia", "device_ids": ["0"]}],
        "gpu-worker-1": [{"capabilities": ["gpu"], "driver": "nvidia", "device_ids": ["1"]}],
    }
    assert workers["gpu-worker-1"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_resolved_config_wires_the_services_to_postgres_and_redis():
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    env = env_example()
    for name in APP_SERVICES:
        app_env = services[name]["environment"]
        assert app_env["DATABASE_URL"] == f"postgres://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/{env['POSTGRES_DB']}"
        assert app_env["CELERY_BROKER_URL"] == f"redis://:{env['REDIS_PASSWORD']}@redis:6379/0"
        assert app_env["SECRET_KEY"] == env["SECRET_KEY"]
    devices = services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["count"] == 1


def test_compose_refuses_to_start_without_a_secret(tmp_path):
    env_file = tmp_path / "incomplete.env"
    env_file.write_text("".join(line + "\n" for line in ENV_EXAMPLE.read_text().splitlines() if not line.startswith("SECRET_KEY=")))
    result = compose("config", "-q", env_file=env_file)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
