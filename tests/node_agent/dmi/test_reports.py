"""Reports wait for the twin coalesced: never refused, the newest value wins, memory bounded by properties."""

from __future__ import annotations

from node_agent.dmi.server import DmiServer


async def test_reports_arriving_faster_than_the_twin_takes_them_are_coalesced_newest_first(
    dmi_node: DmiServer,
) -> None:
    queue = dmi_node.reports
    # Handed over without yielding to the event loop: the twin takes nothing meanwhile.
    for value in range(1000):
        queue.report("default/boiler", {"temperature": f"{value}.5"})
        queue.report("plant/boiler-2", {"temperature": str(-value)})
    queue.report_state("default/boiler", "offline")
    queue.report_state("default/boiler", "online")
    assert len(queue) == 2  # one entry per device, whatever the number of reports
    await queue.drained()
    twins = dmi_node.service.twins
    assert twins["default/boiler"].properties["temperature"].actual.value == "999.5"  # type: ignore[union-attr]
    assert twins["plant/boiler-2"].properties["temperature"].actual.value == "-999"  # type: ignore[union-attr]
    assert twins["default/boiler"].state == "online"
    assert (queue.received, queue.coalesced, queue.applied) == (2000, 1998, 2)


async def test_a_report_the_twin_refuses_after_all_costs_only_itself(dmi_node: DmiServer) -> None:
    queue = dmi_node.reports
    queue.report("default/gone", {"temperature": "1"})  # removed between the check and the twin
    queue.report("default/boiler", {"temperature": "2"})
    await queue.drained()
    assert dmi_node.service.twins["default/boiler"].properties["temperature"].actual.value == "2"  # type: ignore[union-attr]
    assert queue.applied == 1
