"""Simulated peers for tests, demos and benchmarks: OCPP stations with EVs and an OSCP DSO.

The stations in three layers, each importing only those under it:

- fleet: `fleet.StationFleet` runs many stations in one event loop;
- protocol: `station.SimStation`, a websocket client around
  `station_protocol.StationProtocol` (one station's OCPP state without I/O),
  which answers CALLs through `station_handlers` and builds payloads in
  `station_messages`;
- EV physics: `ev`, `connectors` and `limits` (what each connector draws under
  the profiles in force).

`specs` describes the stations; `dso.SimulatedDso` plays the DSO.
"""
