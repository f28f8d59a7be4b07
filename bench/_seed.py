"""Tenants for a harness-started Zapline: ``python -m bench._seed N`` runs the admin CLI's
``tenant create`` and ``account add`` N times in one interpreter.

The same commands a user types, without an interpreter start per command: on a busy 2-core
machine one start is about a second, and the many-tenants shape needs 200 commands. Prints
one JSON line per tenant, ``{"id": ..., "phoneNumberId": ...}``, in order; exits non-zero
with the CLI's own message when a command fails.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys


def phone_number_id(t: int) -> str:
    """Return the phone_number_id the bench gives tenant index ``t``."""
    return f"1{t:014d}"


def _run(argv: list[str]) -> str:
    from zapline.cli import main as cli  # here: bench._targets imports this module too

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli(argv)
    if status != 0:
        raise SystemExit(f"zapline {' '.join(argv)} failed ({status}):\n{out.getvalue()}")
    return out.getvalue()


def seed(tenants: int) -> None:
    """Create ``tenants`` tenants with one account each; print a JSON line per tenant."""
    for t in range(tenants):
        text = _run(["tenant", "create", "--name", f"bench-{t}"])
        obj = next((json.loads(ln) for ln in reversed(text.splitlines()) if ln.startswith("{")),
                   None)  # fmt: skip
        if not isinstance(obj, dict) or "id" not in obj:
            raise SystemExit(f"`zapline tenant create` printed no JSON with an id:\n{text}")
        pnid = phone_number_id(t)
        _run(["account", "add", "--tenant", str(obj["id"]), "--phone-number-id", pnid])
        print(json.dumps({"id": str(obj["id"]), "phoneNumberId": pnid}), flush=True)


if __name__ == "__main__":
    seed(int(sys.argv[1]))
