"""Virtual environments for the start-up benchmark: the host and its plugins installed
from wheels (not editable), beside 3 or 200 plugins; and simonw's ``llm`` beside 0 or
200 plugins of its own, to compare what each plugin costs.

Everything is cached under ``BENCH_CACHE`` (default: ``<tmp>/gleitzeit-bench-startup``):
the trivial plugins' wheels once, the venvs once, and the host's wheels again only when
its source changes (then reinstalled into the existing venvs with ``--no-deps``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The real plugins installed beside the host (their SDKs come with them).
REAL_PLUGINS = ("gleitzeit-calculator", "gleitzeit-ollama", "gleitzeit-openai")
TRIVIAL_VERSION = "1"  # bump when the trivial plugins change

GLEITZEIT_PLUGIN = '''"""A trivial plugin: one tool provider with one method."""

import gleitzeit


class Trivial{n}(gleitzeit.Provider):
    name = "trivial-{n}"
    kind = "tool"

    @gleitzeit.method("trivial{n}/echo")
    async def echo(self, params: dict) -> dict:
        return params


@gleitzeit.hookimpl
def gleitzeit_register_providers(register):
    register(Trivial{n})
'''

LLM_PLUGIN = '''"""A trivial plugin: one model."""

import llm


class Trivial{n}(llm.Model):
    model_id = "trivial-{n}"

    def execute(self, prompt, stream, response, conversation):
        yield prompt.prompt


@llm.hookimpl
def register_models(register):
    register(Trivial{n}())
'''


def cache_dir() -> Path:
    base = os.environ.get("BENCH_CACHE") or str(
        Path(tempfile.gettempdir()) / "gleitzeit-bench-startup"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _say(text: str) -> None:
    print(f"   [startup env] {text}", file=sys.stderr, flush=True)


def _run(cmd: list[str], **kwargs: object) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{done.stdout}\n{done.stderr}")


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def write_wheel(dest: Path, dist: str, module: str, code: str, group: str, entry: str) -> Path:
    """A pure-Python wheel of one module with one entry point (what a build backend
    would write for a one-file plugin)."""
    name, version = dist.replace("-", "_"), "1.0"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{module}.py": code,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n",
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: gleitzeit-bench\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
        f"{info}/entry_points.txt": f"[{group}]\n{entry} = {module}\n",
    }
    path = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as whl:
        record = []
        for arc, text in files.items():
            data = text.encode()
            whl.writestr(arc, data)
            record.append(f"{arc},{_record_hash(data)},{len(data)}")
        record.append(f"{info}/RECORD,,")
        whl.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def trivial_wheels(kind: str, count: int) -> list[Path]:
    """``count`` trivial plugin wheels for ``kind`` ("gleitzeit" or "llm"), made once."""
    folder = cache_dir() / f"trivial-{kind}-v{TRIVIAL_VERSION}"
    folder.mkdir(exist_ok=True)
    wheels = sorted(folder.glob("*.whl"))
    if len(wheels) >= count:
        return wheels[:count]
    for n in range(count):
        if kind == "gleitzeit":
            code, group = GLEITZEIT_PLUGIN.format(n=n), "gleitzeit.plugins"
        else:
            code, group = LLM_PLUGIN.format(n=n), "llm"
        write_wheel(
            folder,
            f"{kind}-trivial-{n:04d}",
            f"{kind}_trivial_{n:04d}",
            code,
            group,
            f"trivial-{n:04d}",
        )
    return sorted(folder.glob("*.whl"))[:count]


def source_hash() -> str:
    """A digest of the host's and the real plugins' sources (what the wheels hold)."""
    digest = hashlib.sha256()
    roots = [ROOT / "gleitzeit", ROOT / "pyproject.toml"] + [
        ROOT / "plugins" / p for p in REAL_PLUGINS
    ]
    for root in roots:
        paths = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in paths:
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(str(path.relative_to(ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def host_wheels() -> list[Path]:
    """Wheels of the host and the real plugins, built from a copy of this source tree
    (so the tree gets no build/ or egg-info), once per source digest."""
    folder = cache_dir() / f"host-{source_hash()}"
    wheels = sorted(folder.glob("*.whl"))
    if len(wheels) == 1 + len(REAL_PLUGINS):
        return wheels
    _say("building wheels of the host and plugins")
    for old in cache_dir().glob("host-*"):  # an earlier source's wheels
        shutil.rmtree(old, ignore_errors=True)
    folder.mkdir(exist_ok=True)
    ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".git", "tests")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("gleitzeit", "pyproject.toml", "README.md"):
            item = ROOT / name
            if item.is_dir():
                shutil.copytree(item, src / name, ignore=ignore)
            else:
                shutil.copy(item, src / name)
        projects = [src] + [ROOT / "plugins" / p for p in REAL_PLUGINS]
        for project in projects:
            if project != src:
                shutil.copytree(project, src / "plugins" / project.name, ignore=ignore)
                project = src / "plugins" / project.name
            cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(folder)]
            if _has_setuptools():
                cmd.append("--no-build-isolation")
            _run([*cmd, str(project)])
    return sorted(folder.glob("*.whl"))


def _has_setuptools() -> bool:
    try:
        import setuptools  # noqa: F401
    except ImportError:
        return False
    return True


def _new_venv(path: Path) -> Path:
    """A fresh venv that sees no other site-packages (so no editable install leaks in)."""
    if path.exists():
        shutil.rmtree(path)
    _run([sys.executable, "-m", "venv", str(path)])
    return path / "bin" / "python"


def gleitzeit_venv(plugins: int) -> Path:
    """A venv with the host, the real plugins and ``plugins - 3`` trivial ones, all from
    wheels; returns its bin/ directory."""
    path = cache_dir() / f"venv-gleitzeit-{plugins}"
    python = path / "bin" / "python"
    wheels = host_wheels()
    marker = path / ".gleitzeit-source"
    digest = source_hash()
    if not (python.exists() and marker.exists()):
        _say(f"making {path} (once; a few minutes with 1,000 plugins)")
        python = _new_venv(path)
        _run([str(python), "-m", "pip", "install", "-q", *map(str, wheels)])
        extra = trivial_wheels("gleitzeit", plugins - len(REAL_PLUGINS))
        if extra:
            _run([str(python), "-m", "pip", "install", "-q", "--no-deps", *map(str, extra)])
    elif marker.read_text() != digest:
        _say(f"reinstalling the host's wheels into {path}")
        cmd = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall"]
        _run([*cmd, *map(str, wheels)])
        # and whatever the new source requires that the venv lacks
        _run([str(python), "-m", "pip", "install", "-q", *map(str, wheels)])
    marker.write_text(digest)
    return path / "bin"


def llm_venv(plugins: int) -> Path:
    """A venv with ``llm`` and ``plugins`` trivial llm plugins; returns its bin/ directory."""
    path = cache_dir() / f"venv-llm-{plugins}"
    python = path / "bin" / "python"
    marker = path / ".ready"
    if not (python.exists() and marker.exists()):
        _say(f"making {path} (once; a few minutes with 1,000 plugins)")
        python = _new_venv(path)
        _run([str(python), "-m", "pip", "install", "-q", "llm"])
        extra = trivial_wheels("llm", plugins)
        if extra:
            _run([str(python), "-m", "pip", "install", "-q", "--no-deps", *map(str, extra)])
        marker.write_text("ready")
    return path / "bin"
