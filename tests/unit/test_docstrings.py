"""Every public name is documented the way the API reference needs it (Google style): a summary,
``Args:`` naming every parameter, ``Returns:`` when something comes back, ``Raises:`` when the
function raises on purpose, and an ``Example:``; every property has a docstring, and every trait
of a session has ``help``.

"Public" is what a user reaches: the names in each public package's ``__all__``, and the
public methods and properties of those classes, inherited ones included (``RealtimeWidget``'s
come from the session core).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import traitlets

from tests.helpers.public_api import PUBLIC

SECTION = re.compile(r"^(\w[\w ]*):\s*$", re.M)
ARG_LINE = re.compile(r"^\s{4}(\*{0,2}\w+)(?:\s*\([^)]*\))?:", re.M)


def sections(doc: str) -> dict[str, str]:
    """A Google docstring's sections by title (``Args``, ``Returns``, ...), each its body."""
    doc = inspect.cleandoc(doc)
    found: dict[str, str] = {}
    marks = list(SECTION.finditer(doc))
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(doc)
        found[mark.group(1)] = doc[mark.end() : end]
    return found


def documented_args(doc: str) -> set[str]:
    body = sections(doc).get("Args", "") + sections(doc).get("Arguments", "")
    return {m.group(1).lstrip("*") for m in ARG_LINE.finditer(body)}


def own_raises(fn: Callable[..., Any]) -> bool:
    """The function's own body raises an exception of its making (not a bare re-raise)."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return False
    tree = ast.parse(source)
    top = tree.body[0]
    for node in ast.walk(top):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node is not top:
            continue
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            return True
    return False


def is_class(obj: Any) -> bool:
    """A class, not a parametrized alias (``Callable[[...], str]`` passes ``isclass`` on 3.10)."""
    return inspect.isclass(obj) and not isinstance(obj, types.GenericAlias)


def ours(obj: Any) -> bool:
    return getattr(obj, "__module__", "").startswith("realtime_widget")


def public_members(cls: type) -> Iterator[tuple[str, Any, type]]:
    """(name, member, defining class) of ``cls``'s public methods and properties written in
    this package."""
    for name in dir(cls):
        if name.startswith("_"):
            continue
        for owner in cls.__mro__:
            if name in vars(owner):
                member = vars(owner)[name]
                break
        else:
            continue
        if not ours(owner) or isinstance(member, traitlets.TraitType):
            continue
        if isinstance(member, property | staticmethod | classmethod) or inspect.isfunction(member):
            yield name, member, owner


def problems_of_callable(where: str, fn: Callable[..., Any], *, skip_first: bool) -> list[str]:
    doc = inspect.getdoc(fn) or ""
    if not doc.strip():
        return [f"{where}: no docstring"]
    found = []
    params = list(inspect.signature(fn).parameters.values())
    if skip_first and params:
        params = params[1:]
    names = {p.name for p in params}
    missing = names - documented_args(doc)
    if missing:
        found.append(f"{where}: Args does not name {sorted(missing)}")
    extra = documented_args(doc) - names
    if extra:
        found.append(f"{where}: Args names {sorted(extra)}, not parameters")
    ret = inspect.signature(fn).return_annotation
    heads = sections(doc)
    if ret not in (None, "None", inspect.Signature.empty) and not {"Returns", "Yields"} & set(
        heads
    ):
        found.append(f"{where}: no Returns section (returns {ret})")
    if own_raises(fn) and "Raises" not in heads:
        found.append(f"{where}: raises, but has no Raises section")
    if not {"Example", "Examples"} & set(heads):
        found.append(f"{where}: no Example section")
    return found


def problems_of_class(where: str, cls: type) -> list[str]:
    doc = inspect.getdoc(cls) or ""
    if not doc.strip() or cls.__doc__ is None:
        return [f"{where}: no docstring"]
    found: list[str] = []
    if issubclass(cls, BaseException):
        return found  # an error's docstring says when it is raised; no example
    heads = sections(doc)
    if not {"Example", "Examples"} & set(heads):
        found.append(f"{where}: no Example section")
    init = cls.__dict__.get("__init__")
    # a typing.Protocol's __init__ is typing's placeholder, not a constructor of ours
    if init is not None and inspect.isfunction(init) and not getattr(cls, "_is_protocol", False):
        params = [
            p.name
            for p in list(inspect.signature(init).parameters.values())[1:]
            if p.kind is not inspect.Parameter.VAR_KEYWORD or p.name != "kwargs"
        ]
        missing = set(params) - documented_args(doc) - documented_args(inspect.getdoc(init) or "")
        if missing:
            found.append(f"{where}: the constructor's Args do not name {sorted(missing)}")
    for name, member, _owner in public_members(cls):
        at = f"{where}.{name}"
        if isinstance(member, property):
            if not (member.__doc__ or "").strip():
                found.append(f"{at}: property without a docstring")
            continue
        fn = member.__func__ if isinstance(member, staticmethod | classmethod) else member
        found += problems_of_callable(at, fn, skip_first=not isinstance(member, staticmethod))
    return found


def public_objects() -> Iterator[tuple[str, Any]]:
    seen: set[int] = set()
    for package, names in PUBLIC.items():
        module = importlib.import_module(package)
        for name in names:
            obj = getattr(module, name)
            if id(obj) in seen or not (is_class(obj) or inspect.isfunction(obj)):
                continue
            seen.add(id(obj))
            yield f"{package}.{name}", obj


@pytest.mark.parametrize("where, obj", list(public_objects()), ids=lambda v: str(v))
def test_a_public_name_is_documented(where: str, obj: Any) -> None:
    if is_class(obj):
        found = problems_of_class(where, obj)
    else:
        found = problems_of_callable(where, obj, skip_first=False)
    assert not found, "\n".join(found)


def test_every_session_trait_has_help() -> None:
    from realtime_widget import RealtimeSession, RealtimeWidget

    missing = []
    for cls in (RealtimeWidget, RealtimeSession):
        for name, trait in cls.class_traits().items():
            owner = next(c for c in cls.__mro__ if name in vars(c))
            if ours(owner) and not name.startswith("_") and not (trait.help or "").strip():
                missing.append(f"{owner.__name__}.{name}")
    assert not missing, f"traits without help: {sorted(set(missing))}"


def test_the_checker_finds_what_is_missing() -> None:
    def half(a: int, b: int) -> int:
        """Half of it.

        Args:
            a: The first.
        """
        raise ValueError("no")

    found = problems_of_callable("half", half, skip_first=False)
    assert any("Args does not name ['b']" in f for f in found)
    assert any("no Returns" in f for f in found)
    assert any("no Raises" in f for f in found)
    assert any("no Example" in f for f in found)

    def whole(a: int) -> int:
        """Whole.

        Args:
            a (int): The number.

        Returns:
            The number.

        Raises:
            ValueError: Never.

        Example:
            >>> whole(1)
            1
        """
        if a < 0:
            raise ValueError("negative")
        return a

    assert problems_of_callable("whole", whole, skip_first=False) == []
