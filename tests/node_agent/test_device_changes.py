"""Device changes that arrive together, taken as few steps as keep their meaning (no sockets)."""

from __future__ import annotations

from node_agent.device_changes import steps
from tests.node_agent.cloud_peer import thermo, thermo_model
from twin.link import DesiredValue, DeviceAssignment, DeviceChange

MODEL = thermo_model()


def upsert(name: str, generation: int = 1, **desired: tuple[str, int, int]) -> DeviceChange:
    assignment = DeviceAssignment(
        device=thermo(name, generation=generation),
        model=MODEL,
        generation=generation,
        desired={p: DesiredValue(value=v, cloud=c, edge=e) for p, (v, c, e) in desired.items()},
        revision=f"r{generation}",
    )
    return DeviceChange(op="upsert", assignment=assignment)


def delete(name: str) -> DeviceChange:
    return DeviceChange(op="delete", id=f"default/{name}")


def test_a_thousand_upserts_of_different_devices_are_one_step() -> None:
    (step,) = steps([upsert(f"t{i}") for i in range(1000)])
    assert len(step.upserts) == 1000 and step.deletes == []


def test_upserts_of_one_device_keep_the_newest_definition_and_the_newest_value_of_each_property() -> None:
    late_repeat = upsert("t1", 3, target=("22", 5, 0))  # an older generation, from another replica
    (step,) = steps([upsert("t1", 4, target=("21", 4, 0)), late_repeat, upsert("t1", 4, mode=("eco", 1, 0))])
    merged = step.upserts["default/t1"]
    assert (merged.generation, merged.revision) == (4, "r4")
    assert {n: (d.value, d.cloud, d.edge) for n, d in merged.desired.items()} == {
        "target": ("22", 5, 0),
        "mode": ("eco", 1, 0),
    }


def test_a_delete_ends_the_step_so_that_the_order_of_changes_stands() -> None:
    first, second = steps([upsert("t1"), upsert("t2"), delete("t1"), upsert("t1", 2)])
    assert (list(first.upserts), first.deletes) == (["default/t1", "default/t2"], ["default/t1"])
    assert (list(second.upserts), second.deletes) == (["default/t1"], [])


def test_nothing_makes_no_step() -> None:
    assert steps([]) == []
