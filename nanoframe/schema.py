"""Validation of values read from files and given as options: type, range, finiteness.

Every reader of a JSON file (state.json, config.json, meta.json, metrics.jsonl, Hugging Face
config.json) pulls its fields through `field`, so a bad file fails with one line that names the
file and the field, before anything is allocated from it:

    step = field(state, "step", where, int, low=0)
    lr = check(lr, "lr", float, low=0)          # options and constructor arguments
"""
import dataclasses
import math

from nanoframe.errors import ConfigError, bounded

MAX_VOCAB = 1 << 21   # more ids than any tokenizer nanoframe reads; a file claiming more is refused

_KIND_NAMES = {int: "an integer", float: "a finite number", str: "a string", bool: "true or false",
               dict: "an object", list: "a list"}


def check(value, name, kind, *, low=None, high=None, choices=None, none_ok=False, error=ConfigError):
    """`value` if it is of `kind` (int, float, str, bool, dict, list) within [low, high] / `choices`;
    else raise `error` naming `name`. Floats must be finite and come back as float; bools are
    never taken for numbers."""
    if value is None and none_ok:
        return None
    ok = _is_kind(value, kind)
    if ok and kind is float:
        value = float(value)
        ok = math.isfinite(value)
    if not ok:
        raise error(f"{name} must be {_KIND_NAMES[kind]}, got {bounded(repr(value), 80)}")
    if low is not None and value < low:
        raise error(f"{name} must be >= {low}, got {bounded(repr(value), 80)}")
    if high is not None and value > high:
        raise error(f"{name} must be <= {high}, got {bounded(repr(value), 80)}")
    if choices is not None and value not in choices:
        raise error(f"{name} must be one of {sorted(choices)}, got {bounded(repr(value), 80)}")
    return value


def _is_kind(value, kind):
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def field(obj, key, where, kind, *, optional=False, default=None, error=ConfigError, **limits):
    """obj[key] checked by `check`, the message naming `where` (the file) and the field.
    A missing key raises unless `optional` (then `default`)."""
    if not isinstance(obj, dict):
        raise error(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if key not in obj:
        if optional:
            return default
        raise error(f"{where}: missing field {key!r}")
    return check(obj[key], f"{where}: field {key!r}", kind, error=error, **limits)


def option(default, help):
    """A dataclass field with its meaning attached (`nanoframe train --help` lists them)."""
    return dataclasses.field(default=default, metadata={"help": help})
