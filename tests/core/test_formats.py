"""Number formats against torch, the oracle: stored values, bits, flags, the table, weight errors."""
import math
import random

import numpy as np
import pytest
import torch

from lab.core.errors import InputError
from lab.core.precision import formats, weights

TORCH = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
INT_VIEW = {"fp32": torch.int32, "fp16": torch.int16, "bf16": torch.int16}


def torch_bits(x: float, fmt: str) -> tuple[str, float]:
    t = torch.tensor(x, dtype=TORCH[fmt])
    width = 32 if fmt == "fp32" else 16
    u = t.view(INT_VIEW[fmt]).item() & ((1 << width) - 1)
    return format(u, f"0{width}b"), float(t.float().item()) if fmt != "fp32" else float(t.item())


def test_pi_and_70000_as_the_course_and_torch_say():
    pi = formats.store_all(math.pi)
    assert f"{pi['fp32'].stored:.10f}" == "3.1415927410"
    assert pi["fp16"].stored == 3.140625 and pi["bf16"].stored == 3.140625
    assert pi["int8"].stored == 3 and pi["int8"].code == 3 and pi["int4"].stored == 3
    assert pi["fp32"].bits == "0 10000000 10010010000111111011011"
    assert pi["fp16"].bits == "0 10000 1001001000"
    assert pi["bf16"].bits == "0 10000000 1001001"
    big = formats.store_all(70000)
    assert math.isinf(big["fp16"].stored) and big["fp16"].overflow and big["fp16"].abs_error is None
    assert big["bf16"].stored == 70144 and not big["bf16"].overflow
    assert big["bf16"].abs_error == 144 and big["bf16"].rel_error == pytest.approx(144 / 70000)
    assert big["fp16"].exponent == "11111" and big["fp16"].mantissa == "0" * 10      # inf's pattern
    assert formats.store(65504, "fp16").stored == 65504 and not formats.store(65504, "fp16").overflow
    tiny = formats.store_all(1e-8)
    assert tiny["fp16"].stored == 0 and tiny["fp16"].underflow and tiny["fp16"].rel_error == 1.0
    assert tiny["bf16"].stored != 0 and not tiny["bf16"].underflow
    sub = formats.store(1e-6, "fp16")
    assert sub.subnormal and sub.exponent == "00000" and sub.stored != 0


@pytest.mark.parametrize("fmt", ["fp32", "fp16", "bf16"])
def test_bits_and_values_equal_torch_view_as_int(fmt):
    rng = random.Random(7)
    values = [0.0, -0.0, 1.0, -1.0, 0.1, 1 / 3, 65504.0, 65519.0, 65520.0, 70000.0, -70000.0, 1e-8, 6e-8,
              1e-5, 6.1e-5, 3.4e38, 3.5e38, 1e-40, 1e-45, 2.0 ** -24, 2.0 ** -25, 1 + 2.0 ** -8, 1 + 2.0 ** -11]
    values += [rng.uniform(-1e5, 1e5) for _ in range(300)]
    values += [rng.choice([-1, 1]) * rng.lognormvariate(0, 25) for _ in range(300)]
    for x in values:
        s = formats.store(x, fmt)
        bits, value = torch_bits(x, fmt)
        assert s.bits.replace(" ", "") == bits, (x, fmt)
        assert s.stored == value or (math.isnan(value) and math.isnan(s.stored)), (x, fmt)
        assert s.overflow == (math.isinf(value) and math.isfinite(x))
        assert s.underflow == (value == 0 and x != 0)


def test_int8_int4_plain_rounding_and_symmetric_scaling():
    assert formats.store(2.5, "int8").code == 2           # ties to even, like torch.round
    assert formats.store(-3.7, "int8").bits == "1 1111100"     # -4 in two's complement
    clamped = formats.store(300, "int8")
    assert clamped.code == 127 and clamped.overflow
    assert formats.store(-9, "int4").code == -8 and formats.store(-9, "int4").overflow
    # symmetric: scale = range / 127, code = round(x / scale), value = code * scale
    s = formats.store(math.pi, "int8_scaled", range_=4.0)
    scale = 4.0 / 127
    code = int(torch.round(torch.tensor(math.pi / scale, dtype=torch.float64)))
    assert s.scale == pytest.approx(scale) and s.code == code == 100
    assert s.stored == pytest.approx(code * scale) and s.abs_error == pytest.approx(abs(code * scale - math.pi))
    assert s.abs_error <= scale / 2
    s4 = formats.store(math.pi, "int4_scaled", range_=4.0)
    assert s4.scale == pytest.approx(4 / 7) and s4.code == 5 and s4.bits == "0 101"
    out = formats.store(5.0, "int8_scaled", range_=4.0)
    assert out.code == 127 and out.overflow and out.stored == pytest.approx(4.0)
    with pytest.raises(InputError, match="positive"):
        formats.store(1.0, "int8_scaled", range_=0)


def test_symmetric_quantization_equals_torch_fake_quantize():
    w = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    for fmt, m in (("int8", 127), ("int4", 7)):
        kept, scale = weights.quantize_symmetric(w, fmt)
        assert scale == pytest.approx(float(w.abs().max()) / m)
        assert torch.allclose(torch.fake_quantize_per_tensor_affine(w, scale, 0, -m, m), kept, atol=1e-7)
        # the single-number view gives the same kept value for each element
        x = float(w[3, 5])
        assert formats.store(x, f"{fmt}_scaled", range_=float(w.abs().max())).stored == pytest.approx(float(kept[3, 5]))


def test_parse_value_takes_what_users_type_and_refuses_the_rest():
    assert formats.parse_value("65,504") == 65504
    assert formats.parse_value("-1e-8") == -1e-8
    assert formats.parse_value("0") == 0 and formats.parse_value("π") == math.pi
    assert formats.parse_value("\u22122.5") == -2.5
    for bad in ("abc", "", "nan", "1e999", "inf"):
        with pytest.raises(InputError):
            formats.parse_value(bad)


def test_format_table_from_torch_finfo():
    rows = {r.fmt: r for r in formats.format_table()}
    assert list(rows) == ["fp32", "fp16", "bf16", "int8", "int4"]
    assert rows["fp32"].max == pytest.approx(3.4028235e38) and rows["fp32"].bytes == 4
    assert rows["fp16"].max == 65504 and rows["fp16"].smallest_normal == 2.0 ** -14
    assert rows["fp16"].smallest_subnormal == 2.0 ** -24
    assert rows["bf16"].max == pytest.approx(3.3895e38, rel=1e-4)
    assert rows["bf16"].smallest_normal == rows["fp32"].smallest_normal
    for fmt in ("fp32", "fp16", "bf16"):
        # the smallest subnormal is the smallest positive value torch can store
        smallest = torch.tensor(rows[fmt].smallest_subnormal, dtype=TORCH[fmt])
        assert smallest.item() > 0 and (smallest / 2).item() == 0
        assert rows[fmt].eps == torch.finfo(TORCH[fmt]).eps
    assert [rows[f].decimal_digits for f in ("fp32", "fp16", "bf16")] == [6, 3, 2]
    assert (rows["int8"].min, rows["int8"].max) == (-128, 127) and (rows["int4"].min, rows["int4"].max) == (-8, 7)
    assert "3×10^38" in rows["fp32"].course and "65,504" in rows["fp16"].course


def test_tensor_stats_histogram_and_errors_against_torch(loaded):
    lm = loaded("gpt2")
    infos = weights.weight_tensors(lm.model)
    names = [t.name for t in infos]
    assert len(names) == len(set(names)) and "lm_head.weight" not in names     # tied: listed once
    name = weights.default_tensor(infos)
    w = dict(lm.model.named_parameters())[name].detach().float().reshape(-1)
    st = weights.tensor_stats(lm.model, name)
    assert st.counts.sum() == w.numel() == st.numel and len(st.edges) == len(st.counts) + 1
    assert st.edges[0] == pytest.approx(float(w.min())) and st.edges[-1] == pytest.approx(float(w.max()))
    for fmt, dt in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        diff = (w.to(dt).float() - w).abs()
        assert st.errors[fmt]["max"] == pytest.approx(float(diff.max()))
        assert st.errors[fmt]["mean"] == pytest.approx(float(diff.mean()))
    assert st.scales["int8"] == pytest.approx(float(w.abs().max()) / 127)
    grid = st.grid("int4")
    assert len(grid) == 15 and grid[-1] == pytest.approx(st.absmax)
    assert st.errors["int8"]["max"] <= st.scales["int8"] / 2 + 1e-7
    # coarser formats lose more: fp16 < bf16 < int8 < int4 (mean error)
    means = [st.errors[f]["mean"] for f in weights.TENSOR_FORMATS]
    assert means == sorted(means)
    with pytest.raises(InputError, match="no weight named"):
        weights.tensor_stats(lm.model, "nope.weight")


def test_fp16_overflow_counted_on_a_tensor():
    model = torch.nn.Linear(4, 4)
    with torch.no_grad():
        model.weight.fill_(0.5)
        model.weight[0, 0] = 70000.0
    st = weights.tensor_stats(model, "weight")
    assert st.errors["fp16"]["overflow"] == 1 and st.errors["bf16"]["overflow"] == 0
    assert np.isfinite(st.errors["fp16"]["max"])
