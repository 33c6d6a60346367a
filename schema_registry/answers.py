"""Rendered answers to reads, cached until the store changes.

Hot reads (a schema by id, a subject lookup) are answered again and again with the same bytes. Each
entry remembers nothing but its bytes; the whole cache is dropped as soon as the store's generation
moves on (any record applied), so an answer is never older than the state it was computed from.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from schema_registry.store import SchemaStore

Answer = TypeVar("Answer")


class AnswerCache(Generic[Answer]):
    def __init__(self, store: SchemaStore, *, max_entries: int = 20_000) -> None:
        self._store = store
        self._max_entries = max_entries
        self._generation = store.generation
        self._answers: dict[Hashable, Answer] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Answer | None:
        if self._generation != self._store.generation:
            return None
        return self._answers.get(key)

    def put(self, key: Hashable, answer: Answer, generation: int) -> None:
        """Keep an answer computed from the store at `generation` (read before computing it)."""
        with self._lock:
            if generation != self._store.generation:
                return  # the store changed while the answer was computed
            if generation != self._generation or len(self._answers) >= self._max_entries:
                self._answers = {}
                self._generation = generation
            self._answers[key] = answer

    def answer(self, key: Hashable, compute: Callable[[], Answer]) -> Answer:
        """The cached answer, else `compute()` (whose exceptions propagate and are not cached)."""
        cached = self.get(key)
        if cached is not None:
            return cached
        generation = self._store.generation
        answer = compute()
        self.put(key, answer, generation)
        return answer
