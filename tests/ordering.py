"""Running the lab's test modules in another order, to show that none depends on what another left behind.

``pytest --shuffle-modules SEED`` keeps each module's tests together and in their written order, and each
release's modules together (one lab per release), and shuffles the modules within a release with that seed:

>>> class Item:
...     def __init__(self, module: str, release: str) -> None:
...         self.nodeid, self.release = f"{module}::t", release
>>> items = [Item(m, r) for r in ("trixie", "bookworm") for m in ("a.py", "a.py", "b.py", "c.py")]
>>> [i.nodeid[0] + i.release[0] for i in shuffled_modules(items, 1, release=lambda i: i.release)]
['bt', 'ct', 'at', 'at', 'cb', 'ab', 'ab', 'bb']
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

Item = TypeVar("Item")


def release_of(item: Any) -> str:
    """The lab release an item runs on (its ``lab`` parameter), or "" for an item that needs no lab."""
    callspec = getattr(item, "callspec", None)
    return str(callspec.params.get("lab", "")) if callspec is not None else ""


def shuffled_modules(items: Sequence[Item], seed: int, release: Callable[[Item], str] = release_of) -> list[Item]:
    """``items`` with the modules of each run of one release in an order drawn from ``seed``."""
    groups: list[tuple[str, dict[str, list[Item]]]] = []
    for item in items:
        key, module = release(item), str(item.nodeid).split("::", 1)[0]
        if not groups or groups[-1][0] != key:
            groups.append((key, {}))
        groups[-1][1].setdefault(module, []).append(item)
    chance = random.Random(seed)
    order: list[Item] = []
    for key, modules in groups:
        names = list(modules)
        if key:  # only modules that share a lab are shuffled; the rest keep their order
            chance.shuffle(names)
        for name in names:
            order.extend(modules[name])
    return order
