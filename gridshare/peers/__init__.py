"""Simulated peers for tests, demos and benchmarks: OCPP stations and an OSCP DSO."""
