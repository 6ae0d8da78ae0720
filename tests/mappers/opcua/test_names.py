"""Discovered variables become property names: valid twin keys, unique, as short as they can be."""

from __future__ import annotations

from mappers.opcua.discovery import unique_names


def test_names_are_valid_twin_keys_made_unique_by_their_parents() -> None:
    paths = [
        ("Line1", "Pump", "Speed"),
        ("Line2", "Pump", "Speed"),
        ("Line1", "Pump", "Current (A)"),
        ("Tank", "Level"),
        ("Tank", "Level"),
    ]
    assert unique_names(paths) == [
        "Line1.Pump.Speed",
        "Line2.Pump.Speed",
        "Current-A",
        "Tank.Level",
        "Tank.Level-2",
    ]
