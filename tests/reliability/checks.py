"""The four promises every reliability run checks (issue 8), on what the PBX sent, the database holds
and the PMS received:

1. every call the PBX sent is stored once (compared by its raw record line);
2. every chargeable call has exactly one posting;
3. the PMS received each charge at most once (by P# and by room, amount, date, time and number), and
   every P# it received belongs to a posting the database holds;
4. every posting that is not ``ok`` says why, and every ``ok`` posting was answered OK by the PMS.
"""

from __future__ import annotations

from collections import Counter

from tests.integration.harness import Site


def unfinished(site: Site) -> bool:
    states = site.db()["states"]
    return bool(states.get("open") or states.get("retry"))


def check_promises(site: Site, expected_calls: int) -> dict:
    """Assert the four promises; returns the counts a run prints."""
    sent = site.pbx_sent()
    db = site.db()
    logs = site.logs()
    assert len(sent) == expected_calls, f"the PBX simulator produced {len(sent)} calls\n{logs}"
    # The simulator draws calls at random and, at hundreds of calls a second from 31 extensions, now and
    # then prints two calls that a PBX never could: same extension, same second, same number, same
    # duration and direction (they differ only in a field the dedup key leaves out). The appliance stores
    # such twins once, as it must store a replayed record once; they are compared by key, the rest by line.
    keys = Counter(sent_key(s) for s in sent)
    twins = {key for key, n in keys.items() if n > 1}
    stored = Counter(r.rstrip() for r in db["raws"])
    produced = Counter(s["raw"].rstrip() for s in sent if sent_key(s) not in twins)
    twin_raws = {key: {s["raw"].rstrip() for s in sent if sent_key(s) == key} for key in twins}
    for key, raws in twin_raws.items():
        kept = [raw for raw in raws if stored.get(raw)]
        assert len(kept) == 1 and stored[kept[0]] == 1, f"calls the dedup key cannot tell apart {key}: {kept}"
        del stored[kept[0]]
    missing = produced - stored
    extra = stored - produced
    assert not missing and not extra, (
        f"{sum(missing.values())} call(s) sent but not stored (first: {list(missing)[:3]}), "
        f"{sum(extra.values())} stored more often than sent (first: {list(extra)[:3]})"
    )
    assert db["calls"] == expected_calls - sum(keys[key] - 1 for key in twins)

    call_ids = [p.call_id for p in db["postings"]]
    assert len(call_ids) == len(set(call_ids)), "a call has two postings"
    assert len(call_ids) == db["chargeable"], "a chargeable call has no posting, or a posting has no charge"

    received = site.pms_received()
    sequences = [int(r["sequence"]) for r in received]
    twice = [s for s, n in Counter(sequences).items() if n > 1]
    assert twice == [], f"P# reached the PMS twice: {twice[:10]}"
    charges = Counter((r["room"], r["amount"], r["date"], r["time"], r["dialled"]) for r in received)
    assert [c for c, n in charges.items() if n > 1] == [], "a charge reached the PMS twice"
    known = {p.sequence for p in db["postings"] if p.sequence is not None}
    assert set(sequences) <= known, f"the PMS received P# the database does not know: {set(sequences) - known}"

    answered_ok = {int(r["sequence"]) for r in received if r["answer"] == "OK"}
    ok = {p.sequence for p in db["postings"] if p.state == "ok"}
    assert ok <= answered_ok, f"postings ok that the PMS never answered OK: {sorted(ok - answered_ok)[:10]}"
    silent = [p for p in db["postings"] if p.state != "ok" and not (p.reason or "").strip()]
    assert silent == [], f"postings not ok without a reason: {silent[:5]}"
    reasons = Counter((p.state, (p.reason or "").split(":")[0][:60]) for p in db["postings"] if p.state != "ok")
    return {"calls": db["calls"], "twins": len(twins), "chargeable": db["chargeable"], "postings": db["states"],
            "pms_received": len(received), "not_ok_reasons": dict(reasons)}


def sent_key(sent: dict) -> tuple:
    """What ``appliance.pipeline.dedup_key`` sees of a simulated call (the Mitel records carry no call id)."""
    return (sent["start"], sent["extension"], sent["dialled"] or sent["caller"], sent["duration"], sent["direction"])


def distinct_calls(site: Site) -> int:
    """How many calls the PBX sent that the appliance can tell apart (see the twins above)."""
    return len({sent_key(s) for s in site.pbx_sent()})
