"""50 concurrent updates to one user over two fields, from 50 threads with their own SDK clients."""

from concurrent.futures import ThreadPoolExecutor

from sdk_models import create, update
from serial_history import serial_order_explains, test_the_check_rejects_a_lost_update  # noqa: F401


def fields(metadata):
    return {"api_key_name": metadata.open_ai.api_key_name, "organization_key": metadata.open_ai.organization_key}


def test_concurrent_updates_lose_nothing(server):
    initial = create(server.api(), "auth0|busy", api_key="sk-busy", api_key_name="name-start", organization_key="org-start")

    def write(index):
        field = "api_key_name" if index % 2 == 0 else "organization_key"
        value = f"{field}-{index}"
        answered = update(server.api(), "auth0|busy", {field: value})
        return field, value, fields(answered.metadata)

    with ThreadPoolExecutor(max_workers=50) as pool:
        writes = list(pool.map(write, range(50)))

    final = fields(update(server.api(), "auth0|busy").metadata)
    assert serial_order_explains(writes, fields(initial.metadata), final)
