"""Fuzz worker: reads 'index class seed' lines, prints one JSON outcome per line."""

from __future__ import annotations

import json
import logging
import sys
import time

import numpy as np


def run_case(seed: int, index: int, cls: str, seed_name: str, compile_every: int) -> str:
    from hcompile.errors import HcompileError
    from hcompile.frontend import import_model
    from hcompile.passes import PassOptions, run_pipeline
    from tests.fuzz.cases import make_case

    data = make_case(seed, index, cls, seed_name)
    try:
        graph, _ = import_model(data)
        run_pipeline(graph, PassOptions(verify=True))
        if index % compile_every:
            return "imported"
        import hcompile

        exe = hcompile.load(hcompile.compile(data))
        rng = np.random.default_rng(index)
        feeds = {s.name: rng.standard_normal(s.shape).astype(s.dtype) for s in exe.inputs}
        outputs = exe.run(feeds)
        for spec in exe.outputs:
            got = outputs[spec.name]
            if got.shape != spec.shape or got.dtype.name != spec.dtype:
                return f"crash:wrong output {spec.name} {got.dtype}{got.shape}"
        return "compiled"
    except HcompileError as err:
        return f"error:{type(err).__name__}"
    except Exception as err:
        first = str(err).splitlines()[0][:120] if str(err) else ""
        return f"crash:{type(err).__name__}: {first}"


def main() -> None:
    logging.disable(logging.CRITICAL)
    seed, compile_every = int(sys.argv[1]), int(sys.argv[2])
    for line in sys.stdin:
        index_text, cls, seed_name = line.split()
        start = time.perf_counter()
        outcome = run_case(seed, int(index_text), cls, seed_name, compile_every)
        print(json.dumps({"i": int(index_text), "class": cls, "seed": seed_name,
                          "outcome": outcome, "s": round(time.perf_counter() - start, 3)}),
              flush=True)


if __name__ == "__main__":
    main()
