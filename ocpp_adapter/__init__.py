"""OCPP-J 1.6 and 2.0.1 central system: stations in, domain events out, limits to stations."""
