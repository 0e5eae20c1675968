"""Repairs a Tune experiment folder whose newest state a kill left half-written.

Tune writes ``experiment_state-<session>.json``, ``search_gen_state-<session>.json`` and
``searcher-state-<session>.pkl`` in place; a driver killed while it writes them leaves an
empty or truncated file, and ``Tuner.restore`` then reads the newest session's state, fails,
and goes on with a broken one (an ``OptunaSearch`` without its space). Before a restore, every
session whose state does not parse is moved to ``.incomplete/`` (nothing is deleted), so Tune
restores the newest complete one; trials it no longer knows are rerun and their archive rows
reconciled. When no session is complete, ``tuner.pkl`` goes too and the phase starts again.
"""

from __future__ import annotations

import json
import posixpath
import re

from raynas.tune.storage import Storage

__all__ = ["set_aside_incomplete_sessions"]

_FILE = re.compile(r"^(experiment_state|search_gen_state|searcher-state)-(.+)\.(json|pkl)$")


def _complete(storage: Storage, name: str) -> bool:
    try:
        with storage.fs.open_input_stream(storage.path(name)) as f:
            data = f.read()
    except OSError:
        return False
    if not data:
        return False
    if data.startswith(b"\x80"):  # a pickle (whatever the suffix) ends with STOP
        return data.endswith(b".")
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def set_aside_incomplete_sessions(experiment: Storage) -> list[str]:
    """Moves the state files of every session with an unreadable one; returns the sessions."""
    sessions: dict[str, list[str]] = {}
    for name in experiment.listdir():
        if match := _FILE.match(name):
            sessions.setdefault(match.group(2), []).append(name)
    bad = [s for s, names in sessions.items() if not all(_complete(experiment, n) for n in names)]
    aside = [n for s in bad for n in sessions[s]]
    if bad and len(bad) == len(sessions) and experiment.exists("tuner.pkl"):
        aside.append("tuner.pkl")  # nothing to restore: the phase starts again
    if aside:
        experiment.makedirs(".incomplete")
    for name in aside:
        experiment.fs.move(
            experiment.path(name), posixpath.join(experiment.path(".incomplete"), name)
        )
    return sorted(bad)
