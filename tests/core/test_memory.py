"""Memory calculator: bytes per dtype, inference, training breakdown, the course's 1B example."""
import pytest

from lab.core import memory as mem
from lab.core.errors import InputError


def test_bytes_per_dtype_is_the_course_table():
    assert mem.DTYPE_BYTES == {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1, "int4": 0.5}
    w = mem.weights_by_dtype(1e9)
    assert w == {"fp32": 4e9, "fp16": 2e9, "bf16": 2e9, "int8": 1e9, "int4": 5e8}


def test_inference_is_weights_times_1_2():
    assert mem.inference_bytes(7e9, "fp16") == pytest.approx(7e9 * 2 * 1.2)
    assert mem.inference_bytes(7e9, "int4") == pytest.approx(7e9 * 0.5 * 1.2)


def test_training_states_per_parameter():
    m = mem.training_memory(1e9, "mixed")
    assert (m.weights, m.gradients) == (2e9, 2e9)
    assert (m.adam_master, m.adam_momentum, m.adam_variance) == (4e9, 4e9, 4e9)
    assert m.bytes_per_param == 16 and m.activations is None and m.total == 16e9
    assert mem.training_memory(1e9, "mixed", fp32_gradients=True).bytes_per_param == 18
    f = mem.training_memory(1e9, "fp32")
    assert (f.weights, f.gradients, f.adam_master, f.adam) == (4e9, 4e9, 0, 8e9)
    assert f.bytes_per_param == 16


def test_activations_follow_korthikanti():
    # GPT-3 175B shape: s=2048, b=1, h=12288, a=96, 96 layers
    per_layer = 2048 * 1 * 12288 * (34 + 5 * 96 * 2048 / 12288)
    assert mem.activation_bytes(96, 12288, 96, 2048, 1) == pytest.approx(96 * per_layer)
    m = mem.training_memory(1e9, layers=24, hidden=2048, heads=16, seq=1024, batch=4)
    assert m.activations == pytest.approx(24 * 1024 * 4 * 2048 * (34 + 5 * 16 * 1024 / 2048))
    assert m.total == pytest.approx(16e9 + m.activations)
    # doubling the batch doubles activations, not states
    m2 = mem.training_memory(1e9, layers=24, hidden=2048, heads=16, seq=1024, batch=8)
    assert m2.activations == pytest.approx(2 * m.activations) and m2.model_states == m.model_states
    assert mem.activation_bytes(2, 64, 4, 32, 1, "fp32") == pytest.approx(2 * mem.activation_bytes(2, 64, 4, 32, 1))


def test_course_example_1b():
    ex = mem.course_example(1e9)
    assert ex["weights_fp32_bytes"] == 4e9
    assert ex["rule_of_thumb_bytes"] == 24e9
    assert ex["states_fp32_bytes"] == 16e9 and ex["states_mixed_bytes"] == 16e9
    assert ex["activation_budget_bytes"] == 8e9
    text = " ".join(ex["explanation"])
    assert "4 GB" in text and "24 GB" in text and "16 GB" in text and "activations" in text


def test_does_it_fit():
    assert mem.fits(16e9, 24e9)["fits"] is True
    no = mem.fits(16e9, 8e9)
    assert no["fits"] is False and no["headroom_bytes"] == -8e9 and "does not fit" in no["verdict"]
    assert mem.fits(1.0, None) is None
    out = mem.estimate(7e9, device_bytes=80e9)
    assert out["fits"]["inference"]["fits"] is True         # 7B fp16 inference = 16.8 GB
    assert out["fits"]["training"]["fits"] is False         # 112 GB of states


def test_bad_input():
    for bad in (0, -1, "abc", float("nan")):
        with pytest.raises(InputError):
            mem.weights_bytes(bad)
    with pytest.raises(InputError):
        mem.weights_bytes(1e9, "fp8")
    with pytest.raises(InputError):
        mem.training_memory(1e9, "fp64")
    with pytest.raises(InputError):
        mem.training_memory(1e9, layers=12)          # shape given only in part
    with pytest.raises(InputError):
        mem.fits(1e9, 0)


def test_verdict_is_never_fits_with_an_unknown_part():
    # the course's 1B example on a 16 GB card: 16 GB of states alone used to read "fits: 16 GB of 16 GB"
    v = mem.fits(16e9, 16e9, ("activations",))
    assert v["status"] == "unknown" and v["fits"] is None and not v["verdict"].startswith("fits")
    assert "activations" in v["verdict"] and v["unknown_parts"] == ["activations"]
    # known parts alone over the device: does not fit, whatever the unknown part is
    assert mem.fits(20e9, 16e9, ("activations",))["status"] == "does not fit"
    # everything known but within 10 % of the device: at the limit, not "fits"
    lim = mem.fits(15.5e9, 16e9)
    assert lim["status"] == "at the limit" and lim["fits"] is None and lim["verdict"].startswith("at the limit")
    assert mem.fits(8e9, 16e9)["status"] == "fits"
    out = mem.estimate(1e9, device_bytes=16e9, activations=False)
    assert out["training"]["activations_bytes"] is None and out["activations"]["shape"] is None
    assert out["verdict"] == {"inference": "fits", "training": "unknown"}
    assert out["fits"]["training"]["fits"] is None


def test_activations_from_a_typical_shape_when_none_is_given():
    sh = mem.typical_shape(1e9)
    assert (sh["layers"], sh["d_model"], sh["heads"], sh["seq"], sh["batch"]) == (24, 2048, 16, 2048, 1)
    assert "GPT-3 XL" in sh["basis"] and sh["source"] == "typical"
    assert mem.typical_shape(7e9)["d_model"] == 4096 and mem.typical_shape(70e9)["layers"] == 80
    out = mem.estimate(1e9, device_bytes=16e9)
    acts = mem.activation_bytes(24, 2048, 16, 2048, 1)
    assert out["activations"]["bytes"] == pytest.approx(acts) and out["activations"]["shape"]["layers"] == 24
    assert out["training"]["total_bytes"] == pytest.approx(16e9 + acts)      # 27.5 GB
    assert out["verdict"]["training"] == "does not fit"
    # the course's rule and the lab's breakdown in one story
    story = " ".join(out["course_example"]["explanation"])
    assert "24 GB" in story and "16 GB" in story and "27.5 GB" in story and "2048" in story
    assert out["course_example"]["lab_total_bytes"] == pytest.approx(16e9 + acts)
    # a given shape wins, and is said to be the given one
    given = mem.estimate(1e9, layers=12, hidden=768, heads=12, seq=512, batch=2)
    assert given["activations"]["shape"]["source"] == "given"
    assert given["activations"]["bytes"] == pytest.approx(mem.activation_bytes(12, 768, 12, 512, 2))
