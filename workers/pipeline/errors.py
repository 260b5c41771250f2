"""Typed recognition errors: a stable code for programs and a message for people."""
from __future__ import annotations


class RecognitionError(Exception):
    """An input the pipeline cannot read. ``code`` is stable; ``message`` is for a person.

    ``best_reading`` and ``position`` are set when symbols were read but the
    expression could not be accepted, so a client can show what was seen.
    """

    def __init__(self, code: str, message: str, *, best_reading: str | None = None, position: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.best_reading = best_reading
        self.position = position

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "best_reading": self.best_reading, "position": self.position}


def raised_by(error: BaseException | None, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The exception of one of ``kinds`` that ``error`` is, or was raised while handling or
    from (its ``__cause__``/``__context__`` chain), else None. Libraries such as Keras re-raise
    whatever they meet as their own error; a time limit struck inside them is still a time limit."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if kinds and isinstance(error, kinds):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
