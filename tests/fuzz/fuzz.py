"""Coverage-guided fuzzing of the decoders with atheris (libFuzzer), one target at a time.

    python tests/fuzz/fuzz.py                        # every target, 60 s each
    python tests/fuzz/fuzz.py sio_decoder --seconds 300

Each target runs in its own process (libFuzzer exits the process when it is done) on a
working corpus under ``.fuzz/<target>/`` seeded from ``tests/fuzz/corpus/<target>/``. A
crash is written to ``tests/fuzz/corpus/<target>/crash-<sha1>`` (so the pytest replay
fails on it until it is fixed); after a clean run the inputs that reach new coverage are
merged into the committed corpus (libFuzzer's ``-merge=1``: only inputs that add
coverage are kept, so it stays small). Exits non-zero when any target crashed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
WORK = HERE.parents[1] / ".fuzz"
# libFuzzer dictionaries: tokens the mutator splices in, so it reaches past the JSON syntax.
DICTS = {"webhook": "webhook.dict", "sio_decoder": "sio.dict", "sio_connection": "sio.dict"}


CHILD_ENV = "ZAPLINE_FUZZ_TARGET"
# Coverage is measured in the code under test, not in the rest of the packages it imports.
INSTRUMENTED = ["engine.protocol", "desk.whatsapp", "storage._text", "storage._sqlite_driver"]


def _child(target: str) -> None:
    import atheris

    with atheris.instrument_imports(include=INSTRUMENTED):
        import _fuzz_targets

    atheris.Setup([str(WORK / "run-target"), *sys.argv[1:]], _fuzz_targets.TARGETS[target])
    atheris.Fuzz()


def _launcher() -> Path:
    # libFuzzer's -merge re-runs argv[0] as a command, so argv[0] must be an executable that
    # starts this interpreter on this file; the target travels in the environment.
    path = WORK / "run-target"
    WORK.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" "$@"\n')
    path.chmod(0o755)
    return path


def _seed(target: str) -> Path:
    import _fuzz_targets

    kept = CORPUS / target
    kept.mkdir(parents=True, exist_ok=True)
    for seed in _fuzz_targets.SEEDS.get(target, []):
        path = kept / f"seed-{hashlib.sha1(seed).hexdigest()[:16]}"
        if not path.exists():
            path.write_bytes(seed)
    work = WORK / target
    work.mkdir(parents=True, exist_ok=True)
    return kept


def run(target: str, seconds: int, max_len: int) -> bool:
    """Fuzz ``target`` for ``seconds``; return True when no crash was found."""
    kept = _seed(target)
    work = WORK / target
    child = [str(_launcher())]
    env = {**os.environ, CHILD_ENV: target}
    common = [f"-max_len={max_len}", "-timeout=10", "-rss_limit_mb=1024"]
    if target in DICTS:
        common.append(f"-dict={HERE / 'dicts' / DICTS[target]}")
    print(f"fuzz {target}: {seconds} s, corpus {kept}", flush=True)
    fuzz = subprocess.run(
        [
            *child,
            *common,
            f"-max_total_time={seconds}",
            f"-artifact_prefix={kept}/",
            "-print_final_stats=1",
            str(work),
            str(kept),
        ],  # fmt: skip
        env=env,
        check=False,
    )
    if fuzz.returncode != 0:
        print(f"fuzz {target}: CRASH (exit {fuzz.returncode}); input kept in {kept}", flush=True)
        return False
    merge = subprocess.run(
        [*child, *common, "-merge=1", str(kept), str(work)], env=env, check=False
    )
    if merge.returncode != 0:
        print(f"fuzz {target}: merging the corpus failed (exit {merge.returncode})", flush=True)
        return False
    print(f"fuzz {target}: no crash; corpus now {len(os.listdir(kept))} inputs", flush=True)
    return True


def main() -> int:
    """Run the targets named on the command line (all by default); return the exit status."""
    target = os.environ.get(CHILD_ENV)
    if target:
        _child(target)
        return 0
    import _fuzz_targets

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    names = ", ".join(_fuzz_targets.TARGETS)
    parser.add_argument("targets", nargs="*", help=f"any of {names} (default: all)")
    parser.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    parser.add_argument("--max-len", type=int, default=4096, help="largest input, bytes")
    args = parser.parse_args()
    unknown = [t for t in args.targets if t not in _fuzz_targets.TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose from {names}")
    results = {t: run(t, args.seconds, args.max_len) for t in args.targets or _fuzz_targets.TARGETS}
    failed = [t for t, ok in results.items() if not ok]
    print(f"fuzz: {len(results) - len(failed)} targets clean, crashed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
