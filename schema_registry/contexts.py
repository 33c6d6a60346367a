"""Schema contexts: qualified subject names (`:.ctx:subject`), as Confluent Schema Registry spells them.

A subject name may start with a context, `:.name:`; without one it is in the default context `.`. Each
context is its own namespace of subjects and of schema ids (`:.a:s` and `:.b:s` are different subjects,
and id 1 of `.a` is not id 1 of `.b`). `:*:` in a subject prefix means every context. Names follow
Confluent's `QualifiedSubject` rules for the default tenant: `:.:s` is `s`, `:.ctx` (no closing colon)
is the context `.ctx` itself (an empty subject), and a context name cannot contain a colon.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from schema_registry.errors import ErrorCode, RegistryInputError

DEFAULT_CONTEXT = "."
DELIMITER = ":"
PREFIX = ":."
WILDCARD = ":*:"
ANY_CONTEXT = "*"
GLOBAL_CONTEXT = ".__GLOBAL"  # holds settings for every context; no subject may live there
RESERVED_NAMES = ("__GLOBAL", "__EMPTY")


class ContextNameError(RegistryInputError):
    """A context name with a colon in it (Confluent's context filter answers 400, error code 400)."""

    def __init__(self, context: str) -> None:
        super().__init__(f"Context name '{context}' cannot contain a colon", ErrorCode.BAD_REQUEST)


@dataclass(frozen=True, order=True)
class Qualified:
    """A subject name split into its context ("." for the default one) and the name inside it."""

    context: str
    name: str

    @property
    def qualified(self) -> str:
        """The subject as stored and shown: `:.ctx:name`, or plain `name` in the default context."""
        return self.context_prefix + self.name

    @property
    def context_prefix(self) -> str:
        return "" if self.context == DEFAULT_CONTEXT else f"{DELIMITER}{self.context}{DELIMITER}"


def split(subject: str) -> Qualified:
    """Confluent's reading of a (default-tenant) subject name."""
    if subject.startswith(PREFIX):
        end = subject.find(DELIMITER, len(PREFIX))
        if end < 0:
            return Qualified(subject[1:], "")
        return Qualified(subject[1:end], subject[end + 1 :])
    if subject.startswith(WILDCARD):
        return Qualified(ANY_CONTEXT, subject[len(WILDCARD) :])
    return Qualified(DEFAULT_CONTEXT, subject)


def valid_subject(subject: str, *, for_setting: bool = False) -> bool:
    """Confluent's `isValidSubject`: no control characters, not a reserved name, and not in the global
    context (which only config and mode may name)."""
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in subject):
        return False
    name = split(subject)
    if name.name in RESERVED_NAMES:
        return False
    return for_setting or name.context != GLOBAL_CONTEXT


def context_of(subject: str) -> str:
    return split(subject).context


def normalize(subject: str) -> str:
    """One spelling per subject: `:.:s` is `s`."""
    return split(subject).qualified


def context_prefix(context: str) -> str:
    """A context name as a subject prefix: `ctx`, `.ctx`, `:.ctx:` all give `:.ctx:`; the default
    context gives "". Raises ContextNameError for a name with a colon inside."""
    name = context[1:] if context.startswith(DELIMITER) else context
    name = name[:-1] if name.endswith(DELIMITER) else name
    if DELIMITER in name:
        raise ContextNameError(name)
    if not name.startswith("."):
        name = "." + name
    return "" if name == DEFAULT_CONTEXT else f"{DELIMITER}{name}{DELIMITER}"


def has_context(text: str) -> bool:
    """The text already names a context (`:.ctx:...` or the wildcard `:*:...`)."""
    return text.startswith(PREFIX) or text.startswith(WILDCARD)


def in_context(subject: str, context: str) -> str:
    """The subject placed in `context` unless it names one itself (Confluent's URL prefix
    `/contexts/{context}/subjects/{subject}`)."""
    return subject if has_context(subject) else context_prefix(context) + subject


def reference_target(parent: str, reference: str) -> str:
    """The subject a schema's reference names: a reference without a context of its own (or with the
    default one, `:.:s`) is in the referring subject's context (Confluent's `qualifySubjectWithParent`)."""
    ref = split(reference)
    if ref.context != DEFAULT_CONTEXT:
        return ref.qualified
    return Qualified(context_of(parent), ref.name).qualified


def prefix_matcher(prefix: str, contexts: list[str]) -> Callable[[str], bool]:
    """A predicate over stored subject names for a `subjectPrefix`, as Confluent's key-range scan
    reads it: `:*:` alone is every subject of every context; `:*:p` is `p...` in the default context
    and in each context; anything else is the range from the prefix to prefix + U+FFFF in (context,
    name) order, so `p` lists the default context's `p...`, `:.ctx:` all of `.ctx`, and "" the whole
    default context."""
    if WILDCARD in prefix:
        rest = prefix[prefix.index(WILDCARD) + len(WILDCARD) :]
        if not rest:
            return lambda subject: True
        starts = {Qualified(c, rest).qualified for c in [DEFAULT_CONTEXT, *contexts]}
        return lambda subject: any(subject.startswith(s) for s in starts)
    low, high = split(prefix), split(prefix + "\uffff")
    return lambda subject: low <= split(subject) <= high
