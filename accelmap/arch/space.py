"""A hardware space for co-design: a base architecture plus the parameters that vary.

``--arch-space SPACE.yaml``::

    base: eyeriss_like            # a preset or an architecture YAML (with optional ert/art)
    parameters:
      pe_x: [4, 32]               # PEs along the mesh's X axis (integer)
      pe_y: [4, 32]
      shared_glb.capacity: [16384, 262144]     # words
      weights_spad.capacity: [64, 512]
      shared_glb.read_bandwidth: [4, 64]       # words/cycle (also write_bandwidth)

:meth:`HardwareSpace.hardware` turns parameter values (a tensor, possibly requiring grad)
into the cost model's :class:`~accelmap.arch.hardware.Hardware`: energies per access and areas
follow the built-in tables as sizes change, anchored so that the base values reproduce the base
architecture's own (ERT/ART) numbers exactly. :meth:`HardwareSpace.architecture` rounds
values to an :class:`~accelmap.arch.architecture.Architecture` that can be written as YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from accelmap.arch import energy_table as et
from accelmap.arch.architecture import Architecture
from accelmap.arch.hardware import Hardware
from accelmap.arch.load import load_architecture
from accelmap.errors import AccelmapError
from accelmap.yamlio import load_yaml

_LEVEL_FIELDS = ("capacity", "read_bandwidth", "write_bandwidth")


@dataclass(frozen=True)
class Parameter:
    name: str  # pe_x, pe_y, or LEVEL.capacity / LEVEL.read_bandwidth / LEVEL.write_bandwidth
    low: float
    high: float
    integer: bool = True


@dataclass(frozen=True)
class HardwareSpace:
    base: Architecture
    parameters: tuple[Parameter, ...]
    source: str = "<arch-space>"

    def __post_init__(self) -> None:
        fan = [i for i in range(len(self.base.levels)) if self.base.fanout(i) != (1, 1)]
        object.__setattr__(self, "_pe_level", fan[-1] if fan else None)
        for p in self.parameters:
            if p.name in ("pe_x", "pe_y"):
                if self._pe_level is None:
                    raise AccelmapError(f"{p.name}: the base architecture has no PE array", file=self.source,
                                        field=f"parameters.{p.name}")
                continue
            lvl, _, what = p.name.partition(".")
            if lvl not in self.base.level_names or what not in _LEVEL_FIELDS:
                raise AccelmapError(f"unknown parameter '{p.name}'; expected pe_x, pe_y or LEVEL.FIELD with LEVEL in "
                                    f"{list(self.base.level_names)} and FIELD in {list(_LEVEL_FIELDS)}",
                                    file=self.source, field=f"parameters.{p.name}")
            if what == "capacity" and self.base.levels[self.base.level_index(lvl)].capacity is None:
                raise AccelmapError(f"{lvl} has unlimited capacity; it cannot be a parameter", file=self.source,
                                    field=f"parameters.{p.name}")

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def base_values(self) -> torch.Tensor:
        """[P] the base architecture's value of every parameter."""
        return torch.tensor([self._base_value(p.name) for p in self.parameters], dtype=torch.float64)

    def _base_value(self, name: str) -> float:
        a = self.base
        if name in ("pe_x", "pe_y"):
            return float(a.fanout(self._pe_level)[0 if name == "pe_x" else 1])
        lvl, _, what = name.partition(".")
        lv = a.levels[a.level_index(lvl)]
        return float({"capacity": lv.capacity, "read_bandwidth": lv.read_bw, "write_bandwidth": lv.write_bw}[what]
                     or 0.0)

    def hardware(self, values: torch.Tensor) -> Hardware:
        """Differentiable hardware tensors for parameter values [P], or [H, P] for H hardware
        points at once (fields that vary then get a leading dimension H)."""
        a = self.base
        hw = Hardware.from_arch(a)
        cap, rbw, wbw = hw.capacity.clone(), hw.read_bw.clone(), hw.write_bw.clone()
        er, ew, area = hw.read_energy.clone(), hw.write_energy.clone(), hw.area.clone()
        inst, fanout = hw.instances.clone(), hw.fanout.clone()
        mac_inst = hw.mac_instances.clone()
        vals = dict(zip(self.names, values.unbind(-1)))
        for name, v in vals.items():
            if name in ("pe_x", "pe_y"):
                continue
            lvl, _, what = name.partition(".")
            i = a.level_index(lvl)
            lv = a.levels[i]
            if what == "capacity":
                base_c = float(lv.capacity)
                small = base_c <= 512 and "sram" not in lv.cls.lower()
                e_new = (et.regfile_energy(v, lv.word_bits, lv.block_size, a.technology_nm) if small
                         else et.sram_energy(v, lv.word_bits, lv.block_size, a.technology_nm))
                e_old = (et.regfile_energy(base_c, lv.word_bits, lv.block_size, a.technology_nm) if small
                         else et.sram_energy(base_c, lv.word_bits, lv.block_size, a.technology_nm))
                a_new = (et.regfile_area(v, lv.word_bits, a.technology_nm) if small
                         else et.sram_area(v, lv.word_bits, a.technology_nm))
                a_old = (et.regfile_area(base_c, lv.word_bits, a.technology_nm) if small
                         else et.sram_area(base_c, lv.word_bits, a.technology_nm))
                # anchored: the base size keeps the base architecture's own energies and area
                cap = _set(cap, i, v)
                er = _set(er, i, er[..., i] * e_new[0] / e_old[0])
                ew = _set(ew, i, ew[..., i] * e_new[1] / e_old[1])
                area = _set(area, i, area[..., i] * a_new / a_old)
            elif what == "read_bandwidth":
                rbw = _set(rbw, i, v)
            else:
                wbw = _set(wbw, i, v)
        if "pe_x" in vals or "pe_y" in vals:
            p = self._pe_level
            fx0, fy0 = a.fanout(p)
            fx = vals.get("pe_x", torch.tensor(float(fx0), dtype=torch.float64))
            fy = vals.get("pe_y", torch.tensor(float(fy0), dtype=torch.float64))
            scale = fx * fy / (fx0 * fy0)
            fanout = _set2(fanout, p, fx, fy)
            below = torch.arange(len(a.levels)) > p
            inst = torch.where(below, inst * torch.as_tensor(scale)[..., None], inst)
            mac_inst = mac_inst * scale
        return Hardware(cap, hw.block, rbw, wbw, er, ew, area, inst, fanout, hw.mac_energy, hw.mac_area, mac_inst,
                        hw.clock_ghz, hw.leak_energy, hw.cluster_size)

    def architecture(self, values, name: str | None = None) -> Architecture:
        """The rounded design as an Architecture (integers where the parameter is integral)."""
        a = self.base
        hw = self.hardware(torch.as_tensor(values, dtype=torch.float64).detach())
        levels = list(a.levels)
        vals = dict(zip(self.names, [float(x) for x in torch.as_tensor(values)]))
        pe = "pe_x" in vals or "pe_y" in vals
        if pe:
            fx0, fy0 = a.fanout(self._pe_level)
            fx, fy = round(vals.get("pe_x", fx0)), round(vals.get("pe_y", fy0))
            scale_num, scale_den = fx * fy, fx0 * fy0
        for i, lv in enumerate(levels):
            changes = {"read_energy": float(hw.read_energy[i]), "write_energy": float(hw.write_energy[i]),
                       "area": float(hw.area[i])}
            if lv.capacity is not None:
                changes["capacity"] = int(round(float(hw.capacity[i])))
            if torch.isfinite(hw.read_bw[i]):
                changes["read_bw"] = float(hw.read_bw[i])
            if torch.isfinite(hw.write_bw[i]):
                changes["write_bw"] = float(hw.write_bw[i])
            if pe and i > self._pe_level:
                changes["instances"] = lv.instances * scale_num // scale_den
                changes["mesh_x"] = lv.mesh_x * fx // a.fanout(self._pe_level)[0]
            levels[i] = replace(lv, **changes)
        compute = a.compute
        if pe:
            compute = replace(compute, instances=compute.instances * scale_num // scale_den,
                              mesh_x=compute.mesh_x * fx // a.fanout(self._pe_level)[0])
        return replace(a, name=name or f"{a.name}_design", levels=tuple(levels), compute=compute)


def _set(t: torch.Tensor, i: int, v) -> torch.Tensor:
    """t [..., L] with entry i replaced by v [...], keeping gradients (no in-place writes)."""
    mask = torch.arange(t.shape[-1]) == i
    return torch.where(mask, torch.as_tensor(v, dtype=t.dtype)[..., None], t)


def _set2(t: torch.Tensor, i: int, vx, vy) -> torch.Tensor:
    """t [..., L, 2] with row i replaced by (vx, vy)."""
    vx, vy = torch.broadcast_tensors(torch.as_tensor(vx, dtype=t.dtype), torch.as_tensor(vy, dtype=t.dtype))
    row = torch.stack([vx, vy], -1)[..., None, :]
    mask = (torch.arange(t.shape[-2]) == i)[:, None]
    return torch.where(mask, row, t)


def builtin_spaces() -> list[str]:
    from importlib import resources

    d = resources.files("accelmap") / "data" / "spaces"
    return sorted(p.name[: -len(".yaml")] for p in d.iterdir() if p.name.endswith(".yaml"))


def resolve_space(spec: str) -> Path:
    """A hardware-space YAML path, or the name of a built-in space."""
    from importlib import resources

    if spec.endswith((".yaml", ".yml")) or "/" in spec or Path(spec).exists():
        return Path(spec)
    if spec not in builtin_spaces():
        raise AccelmapError(f"unknown hardware space '{spec}'; expected a YAML file or one of "
                            f"{', '.join(builtin_spaces())}", field="--arch-space")
    return Path(str(resources.files("accelmap") / "data" / "spaces" / f"{spec}.yaml"))


def read_hardware_space(path: str | Path) -> HardwareSpace:
    src = str(path)
    doc = load_yaml(path)
    if not isinstance(doc, dict) or "base" not in doc:
        raise AccelmapError("missing required field; expected 'base' (a preset or architecture YAML)", file=src,
                            field="base")
    base = load_architecture(str(doc["base"]), doc.get("ert"), doc.get("art"))
    params = doc.get("parameters")
    if not isinstance(params, dict) or not params:
        raise AccelmapError("expected a non-empty 'parameters' mapping of NAME: [LOW, HIGH]", file=src,
                            field="parameters")
    out = []
    for name, rng in params.items():
        if not (isinstance(rng, list) and len(rng) == 2 and all(isinstance(x, (int, float)) for x in rng)):
            raise AccelmapError(f"expected [LOW, HIGH], got {rng!r}", file=src, field=f"parameters.{name}")
        lo, hi = float(rng[0]), float(rng[1])
        if not (0 < lo < hi):
            raise AccelmapError(f"empty or inverted range [{rng[0]}, {rng[1]}]; expected 0 < LOW < HIGH", file=src,
                                field=f"parameters.{name}")
        out.append(Parameter(str(name), lo, hi, not str(name).endswith("bandwidth")))
    return HardwareSpace(base, tuple(out), src)
