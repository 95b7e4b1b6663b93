"""Which ONNX node tests are not applicable to hcompile, each with its reason.

Applicable means: tensor inputs and outputs only, no strings, no training domain. Everything
else runs; known failures are listed in ``KNOWN_FAILURES`` with a reason (xfail, strict).
"""

from __future__ import annotations

import re

#: (pattern on the test name, reason). Matched with re.search against names like "test_abs".
EXCLUDED: list[tuple[str, str]] = [
    (r"^test_(sequence|split_to_sequence|concat_from_sequence|optional)",
     "sequences and optionals are not tensors"),
    (r"_sequence_|_seq_|^test_loop13_seq|^test_if_seq|^test_if_opt|^test_loop16_seq",
     "sequences and optionals are not tensors"),
    (r"string|^test_regex|^test_strnorm|^test_label_encoder|_ascii|^test_cast_.*STRING",
     "string tensors"),
    (r"^test_(adagrad|adam|momentum|nesterov|gradient|training_dropout)",
     "training domain (ai.onnx.preview.training) / training mode"),
    (r"^test_ai_onnx_ml_", "ai.onnx.ml domain (classical ML), not neural networks"),
]


def excluded_reason(name: str) -> str | None:
    for pattern, reason in EXCLUDED:
        if re.search(pattern, name):
            return reason
    return None


#: (pattern, reason) for applicable tests hcompile fails today; run as strict xfails so a fix
#: shows up as an unexpected pass. Filled from `python -m tests.conformance.census`.
KNOWN_FAILURES: list[tuple[str, str]] = []
