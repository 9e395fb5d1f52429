"""File inputs for LLM requests: ``file_path`` and ``image_path``.

Implemented once in the host for every LLM provider: a text file's content is appended
to the prompt (``llm/generate``) or to the last user message (``llm/chat``); an image is
read, base64-encoded and attached in the neutral ``images`` form that providers convert
to their upstream's format. Paths must lie inside the configured allowed roots.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from gleitzeit.config import FilesConfig
from gleitzeit.errors import FileAccessError, PayloadTooLargeError

FILE_KEYS = frozenset(("file_path", "image_path"))
#: Longer paths are refused before the file system sees them (PATH_MAX on Linux).
MAX_PATH = 4096


def allowed_roots(config: FilesConfig, base: Path) -> list[Path]:
    """``files.allowed_roots``, absolute and resolved."""
    roots = [Path(os.path.expanduser(r)) for r in config.allowed_roots]
    return [(r if r.is_absolute() else base / r).resolve() for r in roots]


def inside(path: Path, roots: list[Path]) -> bool:
    """Whether the resolved ``path`` lies in one of ``roots``."""
    return any(path == r or r in path.parents for r in roots)


def check_path_text(raw: str, key: str) -> None:
    """Refuse what no file system call should see: NUL bytes, over-long paths."""
    if "\x00" in raw:
        raise FileAccessError(f"{key} contains a NUL byte", hint="pass a plain path")
    if len(raw) > MAX_PATH:
        raise FileAccessError(
            f"{key} is {len(raw):,} characters long; paths are at most {MAX_PATH:,}"
        )


def _resolve(raw: Any, key: str, config: FilesConfig, base: Path) -> Path:
    if not isinstance(raw, str) or not raw:
        raise FileAccessError(f"{key} must be a non-empty path string, got {raw!r}")
    check_path_text(raw, key)
    path = Path(os.path.expanduser(raw))
    if not path.is_absolute():
        path = base / path
    try:
        path = path.resolve()
        roots = allowed_roots(config, base)
    except (OSError, ValueError) as exc:
        raise FileAccessError(f"{key} {raw[:200]!r} cannot be resolved: {exc}") from None
    if not inside(path, roots):
        raise FileAccessError(
            f"{key} {raw!r} is outside the allowed roots ({', '.join(map(str, roots))})",
            hint="add its directory to files.allowed_roots in gleitzeit.yaml",
        )
    try:
        is_file = path.is_file()
        size = path.stat().st_size if is_file else 0
    except (OSError, ValueError) as exc:
        raise FileAccessError(f"{key} {raw[:200]!r} cannot be read: {exc}") from None
    if not is_file:
        raise FileAccessError(f"{key} {raw!r} does not exist or is not a file ({path})")
    if size > config.max_bytes:
        raise PayloadTooLargeError(
            f"{key} {raw!r} is {size:,} bytes; the limit is {config.max_bytes:,}",
            hint="raise files.max_bytes in gleitzeit.yaml or send a smaller file",
        )
    return path


def apply_file_inputs(
    method: str, params: dict[str, Any], config: FilesConfig, base: Path | None = None
) -> dict[str, Any]:
    """Return ``params`` with ``file_path``/``image_path`` read and folded in."""
    if not any(k in params for k in FILE_KEYS):
        return params
    if method not in ("llm/chat", "llm/generate"):
        raise FileAccessError(
            f"file_path and image_path work with llm/chat and llm/generate, not {method}"
        )
    base = base or Path.cwd()
    params = dict(params)
    text: str | None = None
    image: str | None = None
    if "file_path" in params:
        path = _resolve(params.pop("file_path"), "file_path", config, base)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise FileAccessError(
                f"file_path {str(path)!r} is not UTF-8 text", hint="use image_path for images"
            ) from None
        text = f"\n\n--- {path.name} ---\n{text}"
    if "image_path" in params:
        path = _resolve(params.pop("image_path"), "image_path", config, base)
        image = base64.b64encode(path.read_bytes()).decode("ascii")
    if method == "llm/generate":
        if text is not None:
            params["prompt"] = str(params.get("prompt", "")) + text
        if image is not None:
            params["images"] = list(params.get("images") or []) + [image]
        return params
    messages = [dict(m) if isinstance(m, dict) else m for m in params.get("messages") or []]
    users = [
        i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role", "user") == "user"
    ]
    if not users:
        messages.append({"role": "user", "content": ""})
        users = [len(messages) - 1]
    last = messages[users[-1]]
    if text is not None:
        content = last.get("content", "")
        if isinstance(content, list):
            last["content"] = content + [{"type": "text", "text": text}]
        else:
            last["content"] = str(content) + text
    if image is not None:
        last["images"] = list(last.get("images") or []) + [image]
    params["messages"] = messages
    return params
