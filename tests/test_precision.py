"""PRECISION: how `auto` resolves on a CPU, and int8 banks against float workers (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from worker.core.bank import BankError, FeatureBank, check_model_matches
from worker.core.settings import DEFAULT_DESCRIPTOR, InvalidSetting, Settings
from worker.pipeline import precision
from worker.pipeline.precision import cpu_flags, resolve_precision

VNNI_BF16 = frozenset({"avx512f", "avx512_vnni", "avx512_bf16"})


@pytest.fixture(autouse=True)
def _onednn_unrestricted(monkeypatch):
    """`auto` reads these from the environment where no `environ` is given."""
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS"):
        monkeypatch.delenv(name, raising=False)


def test_auto_picks_bfloat16_where_the_cpu_has_it_else_int8_where_vnni_and_quality_agree(
        monkeypatch):
    monkeypatch.setattr(precision, "INT8_HELD", frozenset({"held"}))
    vnni = frozenset({"avx512f", "avx512_vnni"})
    assert resolve_precision("auto", "held", vnni) == (
        "int8", "auto: no bfloat16 on this CPU; it has VNNI, and int8 held the quality benchmarks")
    assert resolve_precision("auto", "held", frozenset({"avx_vnni"}))[0] == "int8"
    assert resolve_precision("auto", "other", vnni) == (
        "float32", "auto: no bfloat16 on this CPU (int8 not validated for other, VNNI present)")
    assert resolve_precision("auto", "held", VNNI_BF16) == (
        "bfloat16", "auto: the CPU has bfloat16 (int8 held for held)")
    assert resolve_precision("auto", "other", VNNI_BF16)[0] == "bfloat16"
    assert resolve_precision("auto", "held", frozenset({"amx_bf16", "amx_int8"}))[0] == "bfloat16"
    assert resolve_precision("auto", "held", frozenset({"avx2", "fma"}))[0] == "float32"
    assert resolve_precision("auto", "other", frozenset())[0] == "float32"


def test_auto_leaves_bfloat16_alone_where_onednn_is_kept_from_its_units(monkeypatch):
    """ONEDNN_MAX_CPU_ISA below AVX512_CORE_BF16, or oneDNN off: TensorFlow would emulate
    bfloat16 (615 ms a pass here against float32's 129: docs/performance.md)."""
    monkeypatch.setattr(precision, "INT8_HELD", frozenset({"held"}))
    capped = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}
    assert resolve_precision("auto", "held", VNNI_BF16, capped) == (
        "int8", "auto: the CPU has bfloat16 but ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI keeps oneDNN "
                "below the bfloat16 units; it has VNNI, and int8 held the quality benchmarks")
    assert resolve_precision("auto", "other", VNNI_BF16, capped)[0] == "float32"
    assert resolve_precision("auto", "held", VNNI_BF16, {"DNNL_MAX_CPU_ISA": "avx2"})[0] == "int8"
    assert resolve_precision("auto", "other", VNNI_BF16, {"TF_ENABLE_ONEDNN_OPTS": "0"}) == (
        "float32", "auto: the CPU has bfloat16 but TF_ENABLE_ONEDNN_OPTS=0 turns oneDNN off "
                   "(int8 not validated for other, VNNI present)")
    for isa in ("AVX512_CORE_BF16", "avx512_core_amx", "AVX10_1_512_AMX", "ALL", ""):
        assert resolve_precision("auto", "held", VNNI_BF16,
                                 {"ONEDNN_MAX_CPU_ISA": isa})[0] == "bfloat16", isa
    assert resolve_precision("auto", "held", VNNI_BF16, {"TF_ENABLE_ONEDNN_OPTS": "FALSE"})[0] == \
        "int8"  # TensorFlow reads it in any case
    assert resolve_precision("auto", "held", VNNI_BF16, {"TF_ENABLE_ONEDNN_OPTS": "1"})[0] == \
        "bfloat16"
    assert resolve_precision("float32", "held", VNNI_BF16, capped)[0] == "float32"


def test_the_default_descriptor_runs_int8_on_a_cpu_with_vnni_and_no_bfloat16():
    """Its int8 benchmarks held (docs/quality.md), and there int8 takes a fifth to a third of
    float32's pass (docs/performance.md); where the CPU has bfloat16, bfloat16."""
    assert resolve_precision("auto", DEFAULT_DESCRIPTOR, frozenset({"avx512_vnni"}))[0] == "int8"
    assert resolve_precision("auto", DEFAULT_DESCRIPTOR, VNNI_BF16)[0] == "bfloat16"


def test_a_precision_set_by_hand_is_kept_and_checked():
    for value in ("float32", "bfloat16", "int8"):
        assert resolve_precision(value, DEFAULT_DESCRIPTOR, frozenset()) == (
            value, f"PRECISION={value}")
        assert Settings.from_env({"PRECISION": value}).precision == value
    with pytest.raises(InvalidSetting, match="PRECISION must be one of auto, float32, "
                                             "bfloat16, int8, got 'int4'"):
        resolve_precision("int4", DEFAULT_DESCRIPTOR)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_vnni\n\n"
                       "processor\t: 1\nflags\t\t: fpu avx512f avx512_vnni\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx512f", "avx512_vnni"}
    assert cpu_flags(tmp_path / "absent") == frozenset()


def test_int8_and_float_banks_refuse_each_other_float_kinds_do_not():
    rows = np.eye(3, dtype=np.float32)

    def bank(built: str | None) -> FeatureBank:
        return FeatureBank(rows, rows, {"descriptor": "d", "precision": built,
                                        "weights": {"id": "w", "fingerprint": "f"}})

    check_model_matches(bank("float32"), "f", "d", "bfloat16", {})  # the same descriptors, rounded
    check_model_matches(bank("bfloat16"), "f", "d", "float32", {})
    check_model_matches(bank("int8"), "f", "d", "int8", {})
    with pytest.raises(BankError, match="built at precision int8 but this worker runs bfloat16"
                                        ".*set PRECISION=int8 or rebuild the index"):
        check_model_matches(bank("int8"), "f", "d", "bfloat16", {})
    for built in ("float32", "bfloat16", None):  # None: a manifest from before PRECISION
        with pytest.raises(BankError, match="runs int8"):
            check_model_matches(bank(built), "f", "d", "int8", {})


def test_an_int8_index_whose_manifest_records_no_model_is_refused_as_it_loads(tmp_path):
    """A damaged or hand-edited manifest: the worker started on it and every search failed
    with "PRECISION=int8 needs the index's quantised model: build the index at int8"."""
    from worker.core.bank import load_bank, write_bank

    rows = np.eye(3, dtype=np.float32)
    manifest = {"n_pairs": 3, "dim": 3, "dtype": "float32", "precision": "int8"}
    write_bank(tmp_path / "with", rows, rows, manifest, quantised=b"a model")
    assert load_bank(tmp_path / "with").quantised == b"a model"
    write_bank(tmp_path / "without", rows, rows, manifest)
    with pytest.raises(BankError, match="int8 but manifest.json records no quantised model"):
        load_bank(tmp_path / "without")
    write_bank(tmp_path / "float", rows, rows, {**manifest, "precision": "bfloat16"})
    assert load_bank(tmp_path / "float").quantised is None
