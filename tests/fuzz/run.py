"""Importer fuzzer: malformed models must end in an HcompileError or a correct compile.

    .venv/bin/python -m tests.fuzz.run --cases 10000 [--seed 0] [--jobs 2] [--compile-every 25]
                                       [--save-crashers DIR]

Each case is (mutation class, seed model, index), generated deterministically from --seed. A
worker subprocess imports the model and runs the pass pipeline; every --compile-every-th case
that imports also compiles and runs on the CPU. A case must finish within 30 s; a worker that
dies (segfault) or overruns marks its case as a crash or timeout and is restarted.
Prints cases and outcomes by mutation class.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.fuzz.cases import CLASSES, SEEDS

TIMEOUT_S = 30.0


def case_list(count: int) -> list[tuple[int, str, str]]:
    """(index, class, seed model) for ``count`` cases, classes and seeds in rotation."""
    return [(i, CLASSES[i % len(CLASSES)], SEEDS[(i // len(CLASSES)) % len(SEEDS)])
            for i in range(count)]


class Worker:
    def __init__(self, seed: int, compile_every: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.worker", str(seed), str(compile_every)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, bufsize=1, env={**os.environ, "HCOMPILE_FUZZ_WORKER": "1"})

    def run(self, case: tuple[int, str, str]) -> dict[str, object]:
        assert self.proc.stdin and self.proc.stdout
        index, cls, seed_model = case
        self.proc.stdin.write(f"{index} {cls} {seed_model}\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT_S)
        line = self.proc.stdout.readline() if ready else ""
        if line:
            return dict(json.loads(line))
        timed_out = not ready
        self.proc.kill()
        self.proc.wait()
        outcome = "timeout" if timed_out else f"crash:signal {-(self.proc.returncode or 0)}"
        return {"i": index, "class": cls, "outcome": outcome}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_cases(cases: list[tuple[int, str, str]], seed: int, compile_every: int,
              jobs: int) -> list[dict[str, object]]:
    """Run ``cases`` over ``jobs`` workers (round robin); restart a worker after a crash."""
    results: list[dict[str, object]] = []
    workers = [Worker(seed, compile_every) for _ in range(jobs)]
    try:
        chunks = [cases[k::jobs] for k in range(jobs)]
        positions = [0] * jobs
        while any(p < len(c) for p, c in zip(positions, chunks, strict=True)):
            for k in range(jobs):
                if positions[k] >= len(chunks[k]):
                    continue
                result = workers[k].run(chunks[k][positions[k]])
                positions[k] += 1
                results.append(result)
                if str(result["outcome"]).startswith(("crash:signal", "timeout")):
                    workers[k] = Worker(seed, compile_every)
    finally:
        for worker in workers:
            worker.close()
    return sorted(results, key=lambda r: int(str(r["i"])))


def summarise(results: list[dict[str, object]]) -> str:
    by_class: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for result in results:
        by_class[str(result["class"])][str(result["outcome"]).split(":")[0]] += 1
    kinds = sorted({k for c in by_class.values() for k in c})
    lines = [f"{'class':<20} {'cases':>6} " + " ".join(f"{k:>14}" for k in kinds)]
    for cls, counts in sorted(by_class.items()):
        lines.append(f"{cls:<20} {sum(counts.values()):>6} "
                     + " ".join(f"{counts[k]:>14}" for k in kinds))
    total: collections.Counter[str] = collections.Counter()
    for counts in by_class.values():
        total.update(counts)
    lines.append(f"{'total':<20} {sum(total.values()):>6} "
                 + " ".join(f"{total[k]:>14}" for k in kinds))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--compile-every", type=int, default=25)
    parser.add_argument("--save-crashers", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    start = time.time()
    results = run_cases(case_list(args.cases), args.seed, args.compile_every, args.jobs)
    print(summarise(results))
    bad = [r for r in results if str(r["outcome"]).startswith(("crash", "timeout"))]
    print(f"\n{len(results)} cases in {time.time() - start:.0f} s; {len(bad)} crashes/timeouts")
    for r in bad[:50]:
        print(f"  case {r['i']} ({r['class']}): {r['outcome']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.save_crashers and bad:
        from tests.fuzz.cases import make_case

        args.save_crashers.mkdir(parents=True, exist_ok=True)
        for r in bad:
            index = int(str(r["i"]))
            _, cls, seed_model = case_list(index + 1)[index]
            data = make_case(args.seed, index, cls, seed_model)
            (args.save_crashers / f"case{index}-{cls}.onnx").write_bytes(data)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
