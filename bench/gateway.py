"""Gateway benchmark: latency and throughput of a running `manage.py run_gateway` on loopback, with
concurrent clients, for each HTTP server the gateway can run (`--server uvicorn`, the production
default, and `--server threaded`, the previous wsgiref server) in one run, plus streaming
(time to the first token).

    .venv/bin/python bench/gateway.py                                   # demo model, 10 units, both servers, clients 1,8,32, 10 s each
    .venv/bin/python bench/gateway.py --preset tiny --seconds 5
    .venv/bin/python bench/gateway.py --units 0,10,100 --clients 1,4,16 --servers uvicorn --torch-threads 2 --max-tokens 32
    .venv/bin/python bench/gateway.py --database-url postgres://postgres@127.0.0.1:5432/forget_bench_gateway   # registry on PostgreSQL

What one run does (bounded: --seconds per cell; everything it starts is stopped at the end):
  1. a throwaway data folder under var/ (embedded SQLite registry and filesystem unit store, or the
     PostgreSQL database given, dropped and re-created), migrated; an API client with `generate`;
  2. units, written as real unit directories (manifest, digests, adapter, detector):
       real       --real-units people of the story, trained as the pipeline trains them (detector
                  fitted on their questions and profile, orthogonal LoRA adapter);
       synthetic  the rest up to the largest --units: a real detector fitted on another person's
                  trained questions (so it fires on that person only, as a real unit would), and a
                  random LoRA adapter of the real shapes (A ~ N(0, 1/d_in), B ~ N(0, 0.01^2)), not trained.
     All are registered in the adapter registry as units that passed (no certificate is computed);
  3. for each --units level in increasing order, registers units until that many are active; then
     starts one `manage.py run_gateway --server <kind>` per --servers kind (--torch-threads,
     --max-batch), waits until each serves them all, and for each --clients level runs that many
     client threads for --seconds per server, in --rounds parts with the servers taking turns (so
     that other load on the machine falls on both alike), each sending POST /v1/chat/completions (max_tokens
     --max-tokens) in a loop over a fixed mix of prompts: questions about the real units' people
     (their units fire), about people with a synthetic unit (it fires), about other people and
     general facts (nothing fires); then the same with `stream: true` for --stream-clients levels,
     timing the first content chunk (time to first token) and the whole stream; then stops them (SIGTERM);
  4. prints calls/s, completion tokens/s and latency p50/p99 per cell, and the streaming table; JSON to --out.
Each call opens its own connection (as a simple client does); keep-alive is not used.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo_stack import DemoStack, demo_model_dir, free_port, http_json, log, machine, percentile  # noqa: E402

SYNTHETIC_NOTE = "real detector fitted on another person's trained questions + random (untrained) LoRA adapter of the real shapes"


# --- units ---------------------------------------------------------------------------------------------


def build_units(stack: DemoStack, world, count: int, real_people: list[str], seed: int) -> list[dict]:
    """Unit directories: len(real_people) trained ones, then synthetic ones up to `count`."""
    import torch

    from workers import runtime
    from workers.engine.artifacts import write_unit
    from workers.engine.detector import DetectorConfig, train_detector
    from workers.engine.forget_set import ForgetSet
    from workers.engine.pipeline import train_unit
    from workers.engine.serving import load_units
    from workers.engine.training import AdapterWeights, LoraModule

    base, encoder = runtime.get_base("cpu"), runtime.get_encoder("cpu")
    out = stack.var_dir / "bench-units"
    units: list[dict] = []
    real_dirs: list[Path] = []
    for index, name in enumerate(real_people[:count]):
        person = world.person(name)
        records = [{"question": qa.question, "answer": qa.answer} for qa in world.questions(person, "trained")] + [{"text": world.profile(person)}]
        started = time.perf_counter()
        unit_dir = train_unit(
            base,
            ForgetSet.from_records(records, source=name),
            out_dir=out / f"bench-real-{index}",
            previous_units=list(real_dirs),
            encoder=encoder,
            unit_id=f"bench-real-{index}",
        )
        real_dirs.append(unit_dir)
        units.append({"unit_id": f"bench-real-{index}", "dir": unit_dir, "person": name, "synthetic": False})
        log(f"real unit {index + 1} trained in {time.perf_counter() - started:.1f} s")
    if count <= len(units):
        return units
    template = load_units(base, [real_dirs[0]], encoder)[0] if real_dirs else None
    if template is None:
        raise SystemExit("--real-units must be at least 1 to make synthetic units of the real shapes")
    taken = set(real_people) | {n.name for name in real_people for n in world.neighbours(name)}
    others = [p for p in world.people if p.name not in taken]
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for index in range(count - len(units)):
        person = others[index % len(others)]
        detector = train_detector([qa.question for qa in world.questions(person, "trained")], DetectorConfig(), encoder)
        modules = {}
        for module_name, module in template.adapter.modules.items():
            rank, d_in = module.A.shape
            d_out = module.B.shape[0]
            modules[module_name] = LoraModule(
                A=torch.randn(rank, d_in, generator=generator) / d_in**0.5, B=torch.randn(d_out, rank, generator=generator) * 0.01, scaling=module.scaling
            )
        adapter = AdapterWeights(modules, template.adapter.peft_config, base.fingerprint)
        unit_id = f"bench-synthetic-{index:03d}"
        write_unit(
            out / unit_id,
            adapter,
            unit_id=unit_id,
            config=template.manifest.config.get("unlearn"),
            detector_saver=detector.save,
            detector_config=DetectorConfig().to_dict(),
            base_fingerprint=base.fingerprint,
            manifest_extra={"synthetic": SYNTHETIC_NOTE},
        )
        units.append({"unit_id": unit_id, "dir": out / unit_id, "person": person.name, "synthetic": True})
    log(f"{count - len(real_dirs)} synthetic units written in {time.perf_counter() - started:.1f} s")
    return units


def register(units: list[dict]) -> None:
    from adapters_store.services import adapter_register
    from service.accounts.roles import SYSTEM

    for unit in units:
        adapter_register(
            unit_dir=unit["dir"],
            actor=SYSTEM,
            certificate_passed=True,
            certificate_metrics={"benchmark": "gateway", "synthetic": unit["synthetic"], "note": "no certificate computed"},
        )


# --- load ------------------------------------------------------------------------------------------------


def prompt_mix(world, units: list[dict]) -> list[dict]:
    """A fixed mix: real units' people (trained and held-out phrasings), people with a synthetic unit,
    other people, general facts."""
    mix = []
    for unit in [u for u in units if not u["synthetic"]][:2]:
        mix += [{"prompt": qa.question, "about": "real unit"} for qa in world.questions(unit["person"], "trained")[:3]]
        mix += [{"prompt": qa.question, "about": "real unit"} for qa in world.questions(unit["person"], "heldout")[:1]]
    for unit in [u for u in units if u["synthetic"]][:4]:
        mix += [{"prompt": world.questions(unit["person"], "trained")[0].question, "about": "synthetic unit"}]
    with_units = {u["person"] for u in units}
    others = [p for p in world.people if p.name not in with_units][:8]
    mix += [{"prompt": world.questions(p, "trained")[i % 2].question, "about": "no unit"} for i, p in enumerate(others)]
    mix += [{"prompt": qa.question, "about": "general fact"} for qa in world.fact_questions()[:4]]
    return mix


TARGETED = ("real unit", "synthetic unit")  # prompts about a person who has a unit (it fires once the unit is active)


def run_cell(url: str, key: str, model: str, mix: list[dict], *, clients: int, seconds: float, max_tokens: int) -> dict:
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    by_group: dict[str, list[float]] = {"targeted": [], "other": []}
    tokens_by_group = {"targeted": 0, "other": 0}
    tokens = [0]
    errors: dict[str, int] = {}
    lock = threading.Lock()
    stop_at = [0.0]

    def one_call(item: dict) -> None:
        group = "targeted" if item["about"] in TARGETED else "other"
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": item["prompt"]}], "max_tokens": max_tokens})
        started = time.perf_counter()
        conn = http.client.HTTPConnection(host, int(port), timeout=300)
        try:
            conn.request("POST", "/v1/chat/completions", body=body, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
            elapsed = time.perf_counter() - started
            with lock:
                if response.status == 200:
                    used = json.loads(data)["usage"]["completion_tokens"]
                    latencies.append(elapsed)
                    by_group[group].append(elapsed)
                    tokens[0] += used
                    tokens_by_group[group] += used
                else:
                    errors[str(response.status)] = errors.get(str(response.status), 0) + 1
        except OSError as exc:
            with lock:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        finally:
            conn.close()

    def client(offset: int, warm: bool) -> None:
        i = offset
        while True:
            if warm:
                one_call(mix[i % len(mix)])
                return
            if time.perf_counter() >= stop_at[0]:
                return
            one_call(mix[i % len(mix)])
            i += 1

    # Warm-up: one call per client (not counted), then the measured window.
    threads = [threading.Thread(target=client, args=(c * 7, True)) for c in range(clients)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    latencies.clear()
    tokens[0] = 0
    errors.clear()
    for group in by_group:
        by_group[group].clear()
        tokens_by_group[group] = 0
    started = time.perf_counter()
    stop_at[0] = started + seconds
    threads = [threading.Thread(target=client, args=(c * 7, False)) for c in range(clients)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    wall = time.perf_counter() - started  # includes the calls that were running at the deadline
    return summarize_calls(
        {"latencies": latencies, "by_group": by_group, "tokens": tokens[0], "tokens_by_group": tokens_by_group, "wall": wall, "errors": errors}, clients
    )


def summarize_calls(raw: dict, clients: int) -> dict:
    latencies, wall, by_group = raw["latencies"], raw["wall"], raw["by_group"]
    return {
        "clients": clients,
        "calls": len(latencies),
        "wall_seconds": round(wall, 2),
        "calls_per_s": round(len(latencies) / wall, 2),
        "completion_tokens_per_s": round(raw["tokens"] / wall, 1),
        "completion_tokens": raw["tokens"],
        "p50_ms": round(percentile(latencies, 50) * 1000, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 99) * 1000, 1) if latencies else None,
        "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "errors": raw["errors"],
        # Answers differ in length (a refusal is longer than a city name), so latency is also given
        # per group: prompts about people with a unit, and the others (no unit fires; same answers at every level).
        "groups": {
            group: {
                "calls": len(values),
                "p50_ms": round(percentile(values, 50) * 1000, 1) if values else None,
                "p99_ms": round(percentile(values, 99) * 1000, 1) if values else None,
                "completion_tokens_per_call": round(raw["tokens_by_group"][group] / len(values), 1) if values else None,
            }
            for group, values in by_group.items()
        },
        "_raw": raw,
    }


def merge_raw(raws: list[dict]) -> dict:
    """The samples of several parts of one cell (rounds run alternately with the other servers)."""
    merged: dict = {}
    for raw in raws:
        for key, value in raw.items():
            if isinstance(value, list):
                merged.setdefault(key, []).extend(value)
            elif isinstance(value, dict):
                target = merged.setdefault(key, {})
                for k, v in value.items():
                    target[k] = target.get(k, [] if isinstance(v, list) else 0) + v
            else:
                merged[key] = merged.get(key, 0) + value
    return merged


def run_stream_cell(url: str, key: str, model: str, mix: list[dict], *, clients: int, seconds: float, max_tokens: int) -> dict:
    """`clients` threads streaming chat completions for `seconds`: time to the first content chunk
    (the gate has decided by then) and to the end of the stream ([DONE])."""
    host, port = url.removeprefix("http://").split(":")
    first: list[float] = []
    total: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    stop_at = [0.0]

    def one_call(item: dict) -> None:
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": item["prompt"]}], "max_tokens": max_tokens, "stream": True})
        started = time.perf_counter()
        conn = http.client.HTTPConnection(host, int(port), timeout=300)
        try:
            conn.request("POST", "/v1/chat/completions", body=body, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            response = conn.getresponse()
            if response.status != 200:
                response.read()
                with lock:
                    errors[str(response.status)] = errors.get(str(response.status), 0) + 1
                return
            first_at = None
            while True:
                line = response.readline()
                if not line:
                    raise OSError("the stream ended without [DONE]")
                if line.startswith(b"data: [DONE]"):
                    break
                if first_at is None and line.startswith(b"data: ") and b'"content":"' in line and b'"content":""' not in line:
                    first_at = time.perf_counter()
            ended = time.perf_counter()
            with lock:
                first.append((first_at or ended) - started)
                total.append(ended - started)
        except OSError as exc:
            with lock:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        finally:
            conn.close()

    def client(offset: int, warm: bool) -> None:
        i = offset
        while warm or time.perf_counter() < stop_at[0]:
            one_call(mix[i % len(mix)])
            i += 1
            if warm:
                return

    threads = [threading.Thread(target=client, args=(c * 7, True)) for c in range(clients)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    first.clear(), total.clear(), errors.clear()
    started = time.perf_counter()
    stop_at[0] = started + seconds
    threads = [threading.Thread(target=client, args=(c * 7, False)) for c in range(clients)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    wall = time.perf_counter() - started
    return summarize_streams({"first": first, "total": total, "wall": wall, "errors": errors}, clients)


def summarize_streams(raw: dict, clients: int) -> dict:
    first, total, wall = raw["first"], raw["total"], raw["wall"]

    def ms(values: list[float], q: float) -> float | None:
        return round(percentile(values, q) * 1000, 1) if values else None

    return {
        "clients": clients,
        "streams": len(total),
        "streams_per_s": round(len(total) / wall, 2),
        "ttft_p50_ms": ms(first, 50),
        "ttft_p99_ms": ms(first, 99),
        "total_p50_ms": ms(total, 50),
        "total_p99_ms": ms(total, 99),
        "errors": raw["errors"],
        "_raw": raw,
    }


def fired(url: str, key: str, mix: list[dict]) -> dict:
    """One /api/v1/generate call over the mix: which kinds of prompt fired which kinds of unit."""
    status, answer = http_json(
        "POST", url + "/api/v1/generate", body={"prompts": [m["prompt"] for m in mix[:32]], "max_tokens": 8}, headers={"Authorization": f"Bearer {key}"}
    )
    if status != 200:
        return {"error": status}
    summary: dict[str, dict[str, int]] = {}
    for item, result in zip(mix, answer["results"]):
        kinds = summary.setdefault(item["about"], {"prompts": 0, "fired_real": 0, "fired_synthetic": 0})
        kinds["prompts"] += 1
        ids = [u["unit_id"] for u in result["gate"]["units"]]
        kinds["fired_real"] += any(i.startswith("bench-real") for i in ids)
        kinds["fired_synthetic"] += any(i.startswith("bench-synthetic") for i in ids)
    return summary


def table(cells: list[dict]) -> str:
    lines = [
        "| server | active units (real + synthetic) | clients | calls | calls/s | completion tokens/s | p50 ms | p99 ms "
        "| other prompts p50 / p99 ms | prompts with a unit p50 / p99 ms (tokens/answer) | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        errors = sum(c["errors"].values())
        other, targeted = c["groups"]["other"], c["groups"]["targeted"]
        lines.append(
            f"| {c['server']} | {c['units']} ({c['real']} + {c['synthetic']}) | {c['clients']} | {c['calls']} | {c['calls_per_s']:.1f} | "
            f"{c['completion_tokens_per_s']:.0f} | {_ms(c['p50_ms'])} | {_ms(c['p99_ms'])} | {_ms(other['p50_ms'])} / {_ms(other['p99_ms'])} | "
            f"{_ms(targeted['p50_ms'])} / {_ms(targeted['p99_ms'])} ({targeted['completion_tokens_per_call'] or 0:.0f}) | {errors or ''} |"
        )
    return "\n".join(lines)


def stream_table(cells: list[dict]) -> str:
    lines = [
        "| server | active units | clients | streams | streams/s | first token p50 ms | first token p99 ms | "
        "whole stream p50 ms | whole stream p99 ms | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        lines.append(
            f"| {c['server']} | {c['units']} | {c['clients']} | {c['streams']} | {c['streams_per_s']:.1f} | {_ms(c['ttft_p50_ms'])} | "
            f"{_ms(c['ttft_p99_ms'])} | {_ms(c['total_p50_ms'])} | {_ms(c['total_p99_ms'])} | {sum(c['errors'].values()) or ''} |"
        )
    return "\n".join(lines)


def _ms(value) -> str:
    return "–" if value is None else f"{value:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="demo", choices=("demo", "tiny"), help="demo model preset (default demo, what bin/demo serves)")
    parser.add_argument("--units", default="10", help="active-unit levels, comma-separated (default 10)")
    parser.add_argument("--servers", default="threaded,uvicorn", help="run_gateway --server kinds to compare, comma-separated (default threaded,uvicorn)")
    parser.add_argument("--clients", default="1,8,32", help="concurrent clients, comma-separated (default 1,8,32)")
    parser.add_argument(
        "--stream-clients", default="1,8,32", help="concurrent streaming clients (time to first token), comma-separated; empty: none (default 1,8,32)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per cell and server (default 10, at most 120)")
    parser.add_argument("--rounds", type=int, default=4, help="parts each cell is measured in, the servers taking turns (default 4)")
    parser.add_argument("--real-units", type=int, default=2, help="units really trained (default 2); the others are synthetic")
    parser.add_argument("--max-tokens", type=int, default=32, help="max_tokens of each call (default 32)")
    parser.add_argument("--torch-threads", type=int, default=1, help="the gateway's --torch-threads (default 1)")
    parser.add_argument("--max-batch", type=int, default=16, help="the gateway's --max-batch (default 16)")
    parser.add_argument("--database-url", default="", help="PostgreSQL on loopback for the registry (dropped and re-created) instead of SQLite")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "gateway.json")
    parser.add_argument("--keep", action="store_true", help="keep the data folder and logs")
    args = parser.parse_args(argv)
    levels = sorted({int(x) for x in args.units.split(",")})
    servers = [x.strip() for x in args.servers.split(",") if x.strip()]
    clients = [int(x) for x in args.clients.split(",")]
    stream_clients = [int(x) for x in args.stream_clients.split(",") if x.strip()]
    seconds = min(max(args.seconds, 1.0), 120.0)

    started = time.perf_counter()
    machine_before = machine()
    model_dir = demo_model_dir(args.preset)
    with DemoStack(model_dir=model_dir, database_url=args.database_url, keep=args.keep, extra_env={"FORGET_AUTO_ACTIVATE": "true"}) as stack:
        stack.setup_django()
        from service.accounts.roles import Scope
        from service.accounts.services import api_client_create
        from service.unlearning.management.commands.run_demo_story import story_people
        from workers.engine.world import load_world

        _, key = api_client_create(name="bench-gateway", scopes=[Scope.GENERATE.value])
        world = load_world(model_dir / "world.json")
        real_people = list(story_people(world)[0])[: args.real_units] or [p.name for p in world.people[: args.real_units]]
        t = time.perf_counter()
        units = build_units(stack, world, max(levels), real_people, args.seed)
        units_seconds = time.perf_counter() - t
        mix = prompt_mix(world, units)

        cells, stream_cells, levels_info = [], [], []
        registered = 0
        for level in levels:
            t = time.perf_counter()
            register(units[registered:level])
            registered = level
            registered_in = time.perf_counter() - t
            info = {
                "units": level,
                "real": sum(not u["synthetic"] for u in units[:level]),
                "synthetic": sum(u["synthetic"] for u in units[:level]),
                "register_seconds": round(registered_in, 2),
                "servers": {},
            }
            urls = {}
            for server in servers:  # all of them at once: the cells alternate between them (see --rounds)
                t = time.perf_counter()
                name = f"gateway-{server}-{level}"
                urls[server] = stack.start_gateway(port=free_port(), torch_threads=args.torch_threads, max_batch=args.max_batch, server=server, name=name)
            for server, url in urls.items():
                stack.wait_gateway_ready(url)
                health = stack.wait_for(
                    f"the {server} gateway to serve {level} units",
                    lambda: (h := http_json("GET", url + "/healthz")[1]) and len(h.get("units", [])) == level and h,
                    600,
                )
                info["servers"][server] = {"ready_seconds": round(time.perf_counter() - t, 1), "fired": fired(url, key, mix)}
                log(f"{server}: {level} units served; gate on the mix: {info['servers'][server]['fired']}")
            model = health["model"]

            def alternate(run, summarize, counts, kind):
                """Each cell in --rounds parts, the servers taking turns (ABBA...): load from other
                work on the machine falls on all of them alike."""
                out = []
                for count in counts:
                    parts = {server: [] for server in servers}
                    for r in range(args.rounds):
                        for server in servers if r % 2 == 0 else servers[::-1]:
                            parts[server].append(
                                run(urls[server], key, model, mix, clients=count, seconds=seconds / args.rounds, max_tokens=args.max_tokens)["_raw"]
                            )
                    for server in servers:
                        cell = summarize(merge_raw(parts[server]), count)
                        cell.update(server=server, units=level, real=info["real"], synthetic=info["synthetic"])
                        out.append(cell)
                        log(
                            f"  {server} {count:>2} {kind}: "
                            + ", ".join(f"{k} {v}" for k, v in cell.items() if k.endswith(("_per_s", "p50_ms", "p99_ms")) and not k.startswith("max"))
                            + f", errors {cell['errors']}"
                        )
                return out

            cells += alternate(run_cell, summarize_calls, clients, "clients")
            stream_cells += alternate(run_stream_cell, summarize_streams, stream_clients, "streaming clients")
            for server in servers:
                info["servers"][server]["exit_code"] = stack.stop_process(f"gateway-{server}-{level}")
            levels_info.append(info)
        errors = stack.log_errors()

    result = {
        "benchmark": "gateway",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "registry": "PostgreSQL" if args.database_url else "embedded SQLite",
        "preset": args.preset,
        "model": model_dir.name,
        "endpoint": "POST /v1/chat/completions",
        "servers": servers,
        "gateway": {"torch_threads": args.torch_threads, "max_batch": args.max_batch, "poll_seconds": 1.0, "device": "cpu"},
        "max_tokens": args.max_tokens,
        "seconds_per_cell": seconds,
        "connections": "one per call (no keep-alive)",
        "synthetic_units": SYNTHETIC_NOTE,
        "units_built_seconds": round(units_seconds, 1),
        "prompt_mix": {kind: sum(m["about"] == kind for m in mix) for kind in ("real unit", "synthetic unit", "no unit", "general fact")},
        "rounds": args.rounds,
        "levels": levels_info,
        "cells": [{k: v for k, v in c.items() if k != "_raw"} for c in cells],
        "stream_cells": [{k: v for k, v in c.items() if k != "_raw"} for c in stream_cells],
        "log_errors": errors,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "machine": {**machine(), "load_average_before": machine_before["load_average"]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"\nGateway on loopback ({result['registry']} registry; demo model '{args.preset}'; CPU, --torch-threads {args.torch_threads}, "
        f"--max-batch {args.max_batch}; chat completions of up to {args.max_tokens} tokens; {seconds:g} s per cell; servers {', '.join(servers)}):\n"
    )
    print(table(cells))
    if stream_cells:
        print("\nStreaming (stream: true), time to the first content chunk and to [DONE]:\n")
        print(stream_table(stream_cells))
    print(f"\nload average before {machine_before['load_average']}, after {result['machine']['load_average']}")
    print(f"written to {args.out}")
    return 0 if all(not c["errors"] for c in cells + stream_cells) else 1


if __name__ == "__main__":
    sys.exit(main())
