"""One name -> member registry per family (aggregators, query strategies, confidence functions,
labelers): members register themselves with a decorator next to their class, and everything that
lists members (CLI choices, TBAL's strategy names, the contract suite in ``tests/test_contracts.py``)
reads the registry, so adding a member touches one file.

Pure: stdlib and :mod:`labelsieve.errors` only.

>>> SHAPES: Registry[type] = Registry("shape", parameter="shape", flags={"round": False})
>>> @SHAPES.register("circle", round=True)
... class Circle: ...
>>> SHAPES.names(), SHAPES.names(round=False), SHAPES.flags("circle")
(('circle',), (), {'round': True})
>>> SHAPES.resolve("square")
Traceback (most recent call last):
...
labelsieve.errors.ParameterError: The 'shape' parameter must be one of 'circle'. Got 'square' instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, Self, TypeVar

from labelsieve.errors import ParameterError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Members of one family by name (listed sorted, whatever the import order), each with its flags.

    Parameters
    ----------
    family : what a member is, for messages ("aggregator")
    parameter : the parameter / CLI flag a name is given through ("method")
    flags : the flags every member has, with their defaults (e.g. ``{"tbal": True}``)
    check : called with each member at registration; raises ``TypeError`` when it is not one
    """

    def __init__(self, family: str, *, parameter: str, flags: Mapping[str, Any] | None = None,
                 check: Callable[[Any], None] | None = None) -> None:
        self.family = family
        self.parameter = parameter
        self._defaults = dict(flags or {})
        self._check = check
        self._members: dict[str, T] = {}
        self._flags: dict[str, dict[str, Any]] = {}

    # -- registration --------------------------------------------------------------------------
    def register(self, name: str, **flags: Any) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name", flag=value)`` above a class (or function)."""
        unknown = set(flags) - set(self._defaults)
        if unknown:
            raise TypeError(f"unknown {self.family} flag(s) {sorted(unknown)}; known: {sorted(self._defaults)}.")
        if not isinstance(name, str) or not name or name != name.strip():
            raise TypeError(f"a {self.family} name must be a non-empty string without spaces. Got {name!r}.")

        def add(member: T) -> T:
            if name in self._members and self._members[name] is not member:
                raise TypeError(f"{self.family} {name!r} is already registered ({self._members[name]!r}).")
            if self._check is not None:
                self._check(member)
            self._members[name] = member
            self._flags[name] = {**self._defaults, **flags}
            return member

        return add

    def unregister(self, name: str) -> None:
        """Remove a member (tests that register a throw-away one)."""
        self._members.pop(name, None)
        self._flags.pop(name, None)

    # -- lookup ----------------------------------------------------------------------------------
    def resolve(self, name: str) -> T:
        """The member called ``name``; :class:`ParameterError` listing the names otherwise."""
        if not isinstance(name, str) or name not in self._members:
            raise ParameterError(
                f"The '{self.parameter}' parameter must be one of "
                f"{', '.join(repr(n) for n in self.names())}. Got {name!r} instead."
            )
        return self._members[name]

    def flags(self, name: str) -> dict[str, Any]:
        """The flags of member ``name`` (a copy)."""
        self.resolve(name)
        return dict(self._flags[name])

    def names(self, **where: Any) -> tuple[str, ...]:
        """Registered names, sorted; ``names(flag=value)`` keeps the matching ones."""
        return tuple(n for n in sorted(self._members) if all(self._flags[n].get(k) == v for k, v in where.items()))

    def name_of(self, member: Any) -> str | None:
        """The name ``member`` is registered under (``None`` when it is not)."""
        return next((n for n, m in self._members.items() if m is member), None)

    # -- Mapping ---------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> T:
        return self._members[name]

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._members)

    def __repr__(self) -> str:
        return f"Registry({self.family!r}: {', '.join(self.names())})"


class LazyChoices:
    """argparse ``choices`` read when the command line is parsed, not when the parser is built:
    ``load`` may import the modules that register the members (so ``--help`` of other commands
    stays fast), and a member registered later (a plug-in, a test) is accepted.

    >>> c = LazyChoices(lambda: ("a", "b"))
    >>> "a" in c, "z" in c, list(c)
    (True, False, ['a', 'b'])
    """

    def __init__(self, load: Callable[[], tuple[str, ...]]) -> None:
        self._load = load

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


class LazyHelp(str):
    """An argparse ``help`` text built when help is printed (``make()`` may import a registry):
    argparse expands help with ``help % params``, which calls :meth:`__mod__`.

    >>> "%s" % LazyHelp(lambda: "one of: a, b")
    'one of: a, b'
    >>> LazyHelp(lambda: "names: %(default)s") % {"default": "a"}
    'names: a'
    """

    _make: Callable[[], str]

    def __new__(cls, make: Callable[[], str]) -> Self:
        self = super().__new__(cls, "(computed when shown)")
        self._make = make
        return self

    def __mod__(self, params: Any) -> str:
        return self._make() % params

    def __str__(self) -> str:
        return self._make()
