"""The one exception hierarchy: every class in gleitzeit.errors, every code round-trips."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import gleitzeit
from gleitzeit import errors


def _classes_in_errors() -> list[type[errors.GleitzeitError]]:
    return [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type)
        and issubclass(obj, errors.GleitzeitError)
        and obj.__module__ == errors.__name__
    ]


def test_every_error_code_round_trips_without_importing_anything_first():
    # A fresh interpreter that imports only gleitzeit.errors: codes are registered when
    # the classes are defined, not on first use.
    script = """
import json, sys
from gleitzeit import errors
out = []
for cls in [c for c in vars(errors).values()
            if isinstance(c, type) and issubclass(c, errors.GleitzeitError)]:
    err = cls.__new__(cls)
    errors.GleitzeitError.__init__(err, "m", hint="h")
    back = errors.error_from_dict(err.to_dict())
    out.append([cls.__name__, type(back).__name__, back.retryable == err.retryable,
                back.code == err.code])
json.dump(out, sys.stdout)
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    rows = json.loads(proc.stdout)
    assert len(rows) == len(_classes_in_errors())
    for name, back, same_retryable, same_code in rows:
        assert back == name, f"{name} decodes as {back}"
        assert same_retryable and same_code, name


def test_a_changed_retryable_flag_survives_the_wire():
    err = errors.ProviderError("x")
    err.retryable = True
    assert errors.error_from_dict(err.to_dict()).retryable is True
    limited = errors.RateLimitError("slow down", retry_after=2.5)
    back = errors.error_from_dict(limited.to_dict())
    assert isinstance(back, errors.RateLimitError) and back.retry_after == 2.5


def test_every_error_class_of_the_package_lives_in_errors():
    for info in pkgutil.walk_packages(gleitzeit.__path__, "gleitzeit."):
        if info.name.startswith("gleitzeit.testing") or info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
    stray = []
    todo = [errors.GleitzeitError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("gleitzeit.") and cls.__module__ != errors.__name__:
            stray.append(f"{cls.__module__}.{cls.__qualname__}")
    assert not stray, f"error classes outside gleitzeit/errors.py: {stray}"


def test_a_callers_error_is_never_blamed_on_the_instance():
    for cls in (
        errors.InvalidParamsError,
        errors.FileAccessError,
        errors.MethodNotFoundError,
        errors.RoutingError,
        errors.ToolError,
        errors.PayloadTooLargeError,
        errors.TaskReferenceError,
    ):
        assert cls.caller_error and not cls.retryable, cls
    for cls in (
        errors.ProviderUnavailableError,
        errors.RateLimitError,
        errors.ProviderTimeoutError,
    ):
        assert cls.retryable and not cls.caller_error, cls
