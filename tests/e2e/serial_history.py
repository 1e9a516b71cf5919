"""Decides whether concurrent writes to two fields of one record could have run one at a time.

Each write sets one field to a unique value and reports the record right after it. A lost update (two
writers both reading the old record) leaves reports that no serial order explains.
"""

OTHER = {"api_key_name": "organization_key", "organization_key": "api_key_name"}


def serial_order_explains(writes, initial, final):
    """`writes`: (field, value, seen) with `seen` the dict the server answered; `initial`/`final`: dicts."""
    if any(seen.get(field) != value for field, value, seen in writes):
        return False
    state = dict(initial)
    remaining = list(writes)
    while remaining:
        ready = [w for w in remaining if w[2].get(OTHER[w[0]]) == state.get(OTHER[w[0]])]
        fields = {w[0] for w in ready}
        if len(fields) != 1:
            return False
        field = fields.pop()
        values = {w[1] for w in ready}
        remaining = [w for w in remaining if not (w[0] == field and w[1] in values)]
        later_others = [w for w in remaining if w[0] != field]
        if later_others:
            referenced = values & {w[2].get(field) for w in later_others}
            if len(referenced) != 1:
                return False
            state[field] = referenced.pop()
        else:
            if final.get(field) not in values:
                return False
            state[field] = final.get(field)
    return state == final


def test_the_check_rejects_a_lost_update():
    initial = {"api_key_name": "n0", "organization_key": "o0"}
    lost = [
        ("api_key_name", "n1", {"api_key_name": "n1", "organization_key": "o0"}),
        ("organization_key", "o1", {"api_key_name": "n0", "organization_key": "o1"}),
    ]
    assert not serial_order_explains(lost, initial, {"api_key_name": "n0", "organization_key": "o1"})
    serial = [lost[0], ("organization_key", "o1", {"api_key_name": "n1", "organization_key": "o1"})]
    assert serial_order_explains(serial, initial, {"api_key_name": "n1", "organization_key": "o1"})
