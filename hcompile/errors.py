"""Typed errors. Every user-facing failure is an :class:`HcompileError` subclass.

The CLI turns an ``HcompileError`` into exit code 2 and a one-paragraph message (no
traceback); anything else is an internal error (exit 1, traceback shown). Errors carry
the context a user needs to act: the pass, the node and the file a failure came from.
"""

from __future__ import annotations


class HcompileError(Exception):
    """Base class of every error caused by the user's model, flags, inputs or artifact.

    ``hint`` says what to do about it; ``where`` names the pass, node and file when known.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        pass_name: str | None = None,
        node: str | None = None,
        source: str | None = None,
    ) -> None:
        self.message = message
        self.hint = hint
        self.pass_name = pass_name
        self.node = node
        self.source = source
        self.needed_static: list[str] = []
        super().__init__(self.render())

    def render(self) -> str:
        where = []
        if self.source:
            where.append(f"file {self.source}")
        if self.pass_name:
            where.append(f"pass {self.pass_name}")
        if self.node:
            where.append(f"node {self.node}")
        text = self.message
        if where:
            text = f"{text} [{', '.join(where)}]"
        if self.hint:
            text = f"{text}\n  hint: {self.hint}"
        return text

    def with_context(
        self, *, pass_name: str | None = None, node: str | None = None, source: str | None = None
    ) -> HcompileError:
        """Fill in context fields that are still empty and refresh the message."""
        self.pass_name = self.pass_name or pass_name
        self.node = self.node or node
        self.source = self.source or source
        self.args = (self.render(),)
        return self


class ModelError(HcompileError):
    """The ONNX model is malformed or cannot be read."""


class ShapeError(HcompileError):
    """A tensor shape is missing, symbolic or inconsistent."""


class UnsupportedOpError(HcompileError):
    """The model uses operators (or attribute combinations) hcompile cannot compile."""


class DynamicShapeError(UnsupportedOpError):
    """An operator's output size depends on run-time data.

    ``needed_static`` names the run-time tensors that would have to be compile-time constants
    (a caller that knows their values may freeze them: ``compile(..., frozen_inputs=...)``).
    """

    needed_static: list[str]


class IRVerifyError(HcompileError):
    """The IR broke an invariant (a bug in a pass, or a malformed model)."""


class CompileError(HcompileError):
    """A target failed to generate or compile code."""


class ResourceError(HcompileError):
    """What was placed on a device (by ``--targets``/``--place``) does not fit its memory or,
    on an FPGA, its DSP/BRAM/LUT budget."""


class ArtifactError(HcompileError):
    """An artifact file is missing, corrupt, tampered with or from an incompatible version."""


class InputError(HcompileError):
    """Run-time inputs do not match the artifact's signature."""


class DeviceError(HcompileError):
    """A device is missing or failed while running a partition."""


class UsageError(HcompileError):
    """Bad command-line flags or API arguments."""
