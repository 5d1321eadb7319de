"""Device, AMP and process-group helpers on the CPU (the CUDA paths are read, not run, here)."""
import pytest
import torch

from annotate.train.distributed import (DistInfo, all_finite, autocast_for, barrier, channels_last_enabled,
                                        grad_scaler, mean_over_processes, resolve_amp, resolve_device,
                                        setup_distributed, wrap_model)

CPU = torch.device("cpu")


def test_auto_settings_on_the_cpu_are_plain_fp32():
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto") == (torch.device("cuda") if torch.cuda.is_available() else CPU)
    assert resolve_amp("auto", CPU) == "off" and resolve_amp("auto", torch.device("cuda")) == "bf16"
    assert resolve_amp("fp16", CPU) == "fp16"
    assert not channels_last_enabled("auto", CPU) and channels_last_enabled("auto", torch.device("cuda"))
    assert channels_last_enabled("on", CPU) and not channels_last_enabled("off", torch.device("cuda"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


def test_autocast_is_off_on_the_cpu_unless_asked():
    layer = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with autocast_for(CPU, resolve_amp("auto", CPU)):
        assert not torch.is_autocast_enabled("cpu")
        assert layer(x).dtype == torch.float32
    with autocast_for(CPU, "bf16"):
        assert torch.is_autocast_enabled("cpu")
        assert layer(x).dtype == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")


def test_the_grad_scaler_scales_fp16_only():
    assert not grad_scaler(CPU, "off").is_enabled()
    assert not grad_scaler(CPU, "bf16").is_enabled()
    loss = torch.tensor(2.0, requires_grad=True)
    assert grad_scaler(CPU, "off").scale(loss) is loss          # passes through when disabled


def test_a_single_process_needs_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = setup_distributed("cpu")
    assert info == DistInfo(0, 1, 0, CPU) and info.main
    model = torch.nn.Linear(2, 2)
    assert wrap_model(model, info, compile_model=False) is model
    barrier(info)                                               # returns at once
    values = {"loss": 1.5, "geodesic": 0.25}
    assert mean_over_processes(values, info) == values
    assert all_finite(torch.tensor(3.0), info)
    assert not all_finite(torch.tensor(float("nan")), info)
    assert not all_finite(torch.tensor(float("inf")), info)
