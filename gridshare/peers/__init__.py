"""Simulated peers for tests, demos and benchmarks: OCPP stations with EVs and an OSCP DSO.

`fleet.StationFleet` runs `station.SimStation`s (a websocket client each around
an I/O-free `station_protocol.StationProtocol`), described by `specs`;
`dso.SimulatedDso` plays the DSO.
"""
