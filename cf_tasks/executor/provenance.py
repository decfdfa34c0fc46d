"""Where a program came from decides where it runs.

Only program text that *this process* generated from a family plugin may run in the trusted
worker pool; everything else (record files, task documents, exported or user datasets,
anything a YAML loaded, text a model wrote) runs in the isolated tier. The rule is carried by
a type, so that it cannot be forgotten at a call site:

- :class:`GeneratedSource` is a ``str`` subclass that only :func:`generated_source` makes.
  ``cf_tasks.generation`` is the only module of the package that calls it (a test checks the
  whole code base); tests and benchmarks of the trusted tier may call it too.
- Trust does not survive leaving the process or editing the text: JSON, pickling and copies
  give back a plain ``str`` (``__reduce__``), and every ``str`` operation (``+``, slicing,
  ``format``, ``join``) returns a plain ``str``. A document read back from a file, even one
  the generator wrote a minute ago, is therefore untrusted.
- The :class:`~cf_tasks.executor.Executor` routes each job by ``job.trusted``; the trusted
  pool refuses any job whose source is not a ``GeneratedSource``.
"""

from __future__ import annotations

from typing import Any

_MINT = object()


class GeneratedSource(str):
    """Program text generated in this process by a family plugin (see the module docstring)."""

    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> "GeneratedSource":
        if kwargs.pop("_mint", None) is not _MINT or len(args) != 1 or kwargs:
            raise TypeError("GeneratedSource is made only by cf_tasks.executor.provenance.generated_source "
                            "(called by the generation pipeline); program text from anywhere else is untrusted")
        return super().__new__(cls, args[0])

    def __reduce__(self) -> tuple:
        return (str, (str(self),))  # copies, pickles and other processes get a plain (untrusted) str

    def __copy__(self) -> str:
        return str(self)

    def __deepcopy__(self, memo: dict) -> str:
        return str(self)


def generated_source(text: str) -> GeneratedSource:
    """Mark ``text`` as generated in this process by a family plugin, so it may run in the trusted pool.

    Call it only on the output of a family's generator, right where it is turned into a job.
    """
    if not isinstance(text, str):
        raise TypeError(f"program source must be str, got {type(text).__name__}")
    return GeneratedSource(str(text), _mint=_MINT)


def is_generated(source: object) -> bool:
    return type(source) is GeneratedSource
