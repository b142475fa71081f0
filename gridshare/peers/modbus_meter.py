"""A simulated Modbus TCP meter (pymodbus server) for tests, the demo and benchmarks.

It answers like an Eastron SDM630 (input registers, float32: line currents at
0x06/0x08/0x0A, line powers at 0x0C/0x0E/0x10) and like a SunSpec meter
(holding registers from 40000: ``SunS``, the common model 1, meter model 203
with currents and powers as integers with scale factors). The currents are
what the test or demo set with `set_currents`; ``garbage`` makes it answer
registers that do not parse (NaN floats, SunSpec "not implemented").
"""

from __future__ import annotations

import contextlib
import math
import struct
from collections.abc import Mapping

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

SDM_CURRENTS = 0x06
SDM_POWERS = 0x0C
SDM_REGISTERS = 0x20
SUNSPEC_BASE = 40000
COMMON_LENGTH = 66
METER_MODEL = 203
METER_LENGTH = 105
SUNSPEC_REGISTERS = 2 + 2 + COMMON_LENGTH + 2 + METER_LENGTH + 2
NOT_IMPLEMENTED_I16 = 0x8000


def _float_words(value: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


def _i16(value: int) -> int:
    return value & 0xFFFF


class SimulatedMeter:
    """A three-line meter on ``host:port`` (0: any free port), device ``unit_id``."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, unit_id: int = 1, voltage_v: float = 230.0
    ) -> None:
        self.host = host
        self.unit_id = unit_id
        self.voltage_v = voltage_v
        self.currents: dict[str, float] = {"L1": 0.0, "L2": 0.0, "L3": 0.0}
        self.garbage = False
        self.silent = False
        """Answer nothing (as a meter whose link is down): every read fails."""
        self.reads = 0
        self._port = port
        self._server: ModbusTcpServer | None = None

    def set_currents(self, currents: Mapping[str, float]) -> None:
        """Line → amperes (negative: export)."""
        self.currents.update({k.upper(): float(v) for k, v in currents.items()})

    @property
    def port(self) -> int:
        if self._server is None or self._server.transport is None:
            return self._port
        sockets = getattr(self._server.transport, "sockets", None) or ()
        return int(sockets[0].getsockname()[1]) if sockets else self._port

    def _sdm(self) -> list[int]:
        regs = [0] * SDM_REGISTERS
        for i, line in enumerate(("L1", "L2", "L3")):
            amps = self.currents[line]
            current = math.nan if self.garbage else abs(amps)
            regs[SDM_CURRENTS + 2 * i : SDM_CURRENTS + 2 * i + 2] = _float_words(current)
            power = amps * self.voltage_v
            regs[SDM_POWERS + 2 * i : SDM_POWERS + 2 * i + 2] = _float_words(power)
        return regs

    def _sunspec(self) -> list[int]:
        regs = [0] * SUNSPEC_REGISTERS
        regs[0:2] = [0x5375, 0x6E53]  # "SunS"
        regs[2:4] = [1, COMMON_LENGTH]
        meter = 4 + COMMON_LENGTH
        regs[meter : meter + 2] = [METER_MODEL, METER_LENGTH]
        data = meter + 2
        amps = [self.currents[line] for line in ("L1", "L2", "L3")]
        regs[data] = _i16(round(sum(abs(a) for a in amps) * 10))
        for i, a in enumerate(amps):
            regs[data + 1 + i] = NOT_IMPLEMENTED_I16 if self.garbage else _i16(round(abs(a) * 10))
            regs[data + 17 + i] = _i16(round(a * self.voltage_v / 10))
        regs[data + 4] = _i16(-1)  # A_SF: tenths of an ampere
        regs[data + 16] = _i16(round(sum(amps) * self.voltage_v / 10))
        regs[data + 20] = _i16(1)  # W_SF: tens of watts
        regs[data + METER_LENGTH : data + METER_LENGTH + 2] = [0xFFFF, 0]
        return regs

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        self.reads += 1
        if self.silent:
            from pymodbus.constants import ExcCodes

            return ExcCodes.DEVICE_FAILURE  # type: ignore[return-value]
        fresh = self._sdm() if function_code == 4 else self._sunspec()
        first = SUNSPEC_BASE if function_code != 4 else 0
        for k in range(len(current)):
            i = start_address + k - first
            if 0 <= i < len(fresh):
                current[k] = fresh[i]
        return None

    async def start(self) -> None:
        device = SimDevice(
            id=self.unit_id,
            simdata=(
                [SimData(0, count=1, values=False, datatype=DataType.BITS)],
                [SimData(0, count=1, values=False, datatype=DataType.BITS)],
                [SimData(SUNSPEC_BASE, values=self._sunspec(), datatype=DataType.REGISTERS)],
                [SimData(0, values=self._sdm(), datatype=DataType.REGISTERS)],
            ),
            action=self._action,
        )
        self._server = ModbusTcpServer(device, address=(self.host, self._port))
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.shutdown()
            self._server = None
