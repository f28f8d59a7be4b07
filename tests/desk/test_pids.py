"""desk/pids.py: recovery pids say who and from which seq, and only our secret makes them."""

from __future__ import annotations

from desk.pids import PidClaims, issue_pid, read_pid

SECRET = "a-secret-long-enough-for-hmac-0123456789"


def test_a_pid_round_trips_its_claims() -> None:
    pid = issue_pid(SECRET, "tenant-1", "user-1", 42)
    claims = read_pid(SECRET, pid)
    assert isinstance(claims, PidClaims)
    assert (claims.tenant_id, claims.user_id, claims.seq) == ("tenant-1", "user-1", 42)
    assert claims.issued_at > 0
    assert issue_pid(SECRET, "tenant-1", "user-1", 42) != pid, "each connect its own"


def test_a_pid_signed_otherwise_or_altered_is_not_ours() -> None:
    pid = issue_pid(SECRET, "tenant-1", "user-1", 42)
    assert read_pid("another-secret", pid) is None
    version, body, mac = pid.split(".")
    forged_body = issue_pid(SECRET, "tenant-2", "user-1", 42).split(".")[1]
    assert read_pid(SECRET, f"{version}.{forged_body}.{mac}") is None
    for junk in ("", "p1", "p1..", "x.y.z", pid + ".extra", "p1.%%%.%%%", "p2" + pid[2:]):
        assert read_pid(SECRET, junk) is None
