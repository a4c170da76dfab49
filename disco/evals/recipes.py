"""Each evaluation validates its own recipe: a dataclass built from the profile's mapping."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

RecipeT = TypeVar("RecipeT")


def coerce_recipe(recipe_type: type[RecipeT], recipe: Any) -> RecipeT:
    """`recipe_type` from an instance of it, a mapping of its fields (lists become tuples) or None (defaults)."""
    if isinstance(recipe, recipe_type):
        return recipe
    if recipe is None:
        return recipe_type()
    if not isinstance(recipe, Mapping):
        raise ValueError(f"this evaluation takes a {recipe_type.__name__} or a mapping of its fields, got {type(recipe).__name__}; route its own recipe (eval_recipes) from the profile")
    valid = [field.name for field in dataclasses.fields(recipe_type)]
    unknown = sorted(set(recipe) - set(valid))
    if unknown:
        raise ValueError(f"unknown {recipe_type.__name__} field(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    values = {name: tuple(value) if isinstance(value, list) else value for name, value in recipe.items()}
    return recipe_type(**values)
