"""Reading a meter over Modbus TCP with pymodbus.

Register maps:

* ``eastron-sdm630``: input registers, float32 (big-endian words): line
  currents at 0x06/0x08/0x0A, line powers at 0x0C/0x0E/0x10. The currents are
  magnitudes; the sign of each line's power says import (+) or export (−).
* ``sunspec``: holding registers from ``sunspec_base`` (``SunS``), the models
  walked to the first meter model (201 single-phase, 203 wye, 204 delta):
  ``AphA..AphC`` with ``A_SF``, signed by ``WphA..WphC``.
* a register table of the site file: each line's register, type and scale.

A register that does not parse (NaN, "not implemented", no ``SunS`` marker,
no meter model) refuses the reading: `ReadingRefused`, never a figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from gridshare.errors import GridshareError
from gridshare.meters.config import Register, RegisterTable, SourceConfig
from gridshare.meters.readings import ReadingRefused

SDM_CURRENTS = 0x06
SDM_WORDS = 12  # three currents then three powers, two words each
SUNS = (0x5375, 0x6E53)
METER_MODELS = frozenset({201, 203, 204})
NOT_IMPLEMENTED_I16 = -0x8000
MAX_MODELS = 64
"""Models walked at most before giving up (a map that never ends)."""

Float32 = AsyncModbusTcpClient.DATATYPE.FLOAT32
_TYPES = {
    "float32": AsyncModbusTcpClient.DATATYPE.FLOAT32,
    "int16": AsyncModbusTcpClient.DATATYPE.INT16,
    "uint16": AsyncModbusTcpClient.DATATYPE.UINT16,
    "int32": AsyncModbusTcpClient.DATATYPE.INT32,
    "uint32": AsyncModbusTcpClient.DATATYPE.UINT32,
}


class ModbusReadError(GridshareError):
    """The meter did not answer, or answered a Modbus exception (no reading)."""


def _signed(word: int) -> int:
    return word - 0x10000 if word >= 0x8000 else word


def _number(value: object, what: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ReadingRefused(f"{what}: registers do not hold a number")
    if not math.isfinite(value):
        raise ReadingRefused(f"{what}: registers hold {value}")
    return float(value)


def sdm630_currents(words: Sequence[int]) -> dict[str, float]:
    """Eastron SDM630 input registers 0x06..0x11 → signed line currents."""
    if len(words) != SDM_WORDS:
        raise ReadingRefused(f"expected {SDM_WORDS} registers, got {len(words)}")
    out: dict[str, float] = {}
    for i, line in enumerate(("L1", "L2", "L3")):
        conv = AsyncModbusTcpClient.convert_from_registers
        amps = _number(conv(list(words[2 * i : 2 * i + 2]), Float32), f"{line} current")
        watts = _number(conv(list(words[6 + 2 * i : 8 + 2 * i]), Float32), f"{line} power")
        if amps < 0:
            raise ReadingRefused(f"{line} current {amps:g}: the SDM630 shows magnitudes")
        out[line] = -amps if watts < 0 else amps
    return out


def sunspec_currents(model: int, data: Sequence[int]) -> dict[str, float]:
    """A SunSpec meter model's data block (after ID and L) → signed line currents."""
    if len(data) < 21:
        raise ReadingRefused(f"meter model {model}: {len(data)} registers, too short")
    sf = _signed(data[4])
    if sf == NOT_IMPLEMENTED_I16 or not -10 <= sf <= 10:
        raise ReadingRefused(f"meter model {model}: A_SF {sf} does not parse")
    lines = ("L1",) if model == 201 else ("L1", "L2", "L3")
    out: dict[str, float] = {}
    for i, line in enumerate(lines):
        raw = _signed(data[1 + i])
        if raw == NOT_IMPLEMENTED_I16:
            raise ReadingRefused(f"meter model {model}: {line} current not implemented")
        watts = _signed(data[17 + i])
        amps = abs(raw) * 10.0**sf
        out[line] = -amps if watts < 0 and watts != NOT_IMPLEMENTED_I16 else amps
    return out


class ModbusMeter:
    """One meter's Modbus TCP client; `read` gives its line currents."""

    def __init__(self, source: SourceConfig) -> None:
        assert source.host is not None
        self.source = source
        self.client = AsyncModbusTcpClient(
            source.host,
            port=source.port_or_default,
            timeout=source.timeout_s,
            retries=0,
            reconnect_delay=0,  # the reader's own loop reconnects
        )
        self._sunspec_at: tuple[int, int] | None = None
        """(address of the meter model's data, its model id), once found."""

    async def read(self) -> dict[str, float]:
        try:
            if not self.client.connected:
                await self.client.connect()
                if not self.client.connected:
                    raise ModbusReadError("no connection")
            rmap = self.source.register_map
            if rmap == "eastron-sdm630":
                return sdm630_currents(await self._words("input", SDM_CURRENTS, SDM_WORDS))
            if rmap == "sunspec":
                return await self._sunspec()
            assert isinstance(rmap, RegisterTable)
            return await self._table(rmap)
        except ModbusException as e:
            self.client.close()
            raise ModbusReadError(str(e)) from e

    def close(self) -> None:
        self.client.close()

    async def _words(self, kind: str, address: int, count: int) -> list[int]:
        unit = self.source.unit_id
        if kind == "input":
            rr = await self.client.read_input_registers(address, count=count, device_id=unit)
        else:
            rr = await self.client.read_holding_registers(address, count=count, device_id=unit)
        if rr.isError():
            raise ModbusReadError(f"registers {address}..{address + count - 1}: {rr}")
        return list(rr.registers)

    async def _sunspec(self) -> dict[str, float]:
        if self._sunspec_at is None:
            self._sunspec_at = await self._find_meter_model()
        at, model = self._sunspec_at
        try:
            return sunspec_currents(model, await self._words("holding", at, 21))
        except ReadingRefused:
            self._sunspec_at = None  # the map may have changed: look again next time
            raise

    async def _find_meter_model(self) -> tuple[int, int]:
        base = self.source.sunspec_base
        if tuple(await self._words("holding", base, 2)) != SUNS:
            raise ReadingRefused(f"no SunSpec marker 'SunS' at register {base}")
        at = base + 2
        for _ in range(MAX_MODELS):
            model, length = await self._words("holding", at, 2)
            if model == 0xFFFF:
                break
            if model in METER_MODELS:
                return at + 2, model
            at += 2 + length
        raise ReadingRefused("no SunSpec meter model (201, 203, 204) in the map")

    async def _table(self, table: RegisterTable) -> dict[str, float]:
        out: dict[str, float] = {}
        for line, reg in (("L1", table.l1), ("L2", table.l2), ("L3", table.l3)):
            if reg is not None:
                out[line] = await self._register(reg, table.word_order, line)
        return out

    async def _register(self, reg: Register, word_order: str, line: str) -> float:
        words = 1 if reg.type in ("int16", "uint16") else 2
        regs = await self._words(reg.kind, reg.address, words)
        value = AsyncModbusTcpClient.convert_from_registers(
            regs,
            _TYPES[reg.type],
            word_order="little" if word_order == "little" else "big",
        )
        return _number(value, f"{line} register {reg.address}") * reg.scale
