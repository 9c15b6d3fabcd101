"""GPU placement and memory (:mod:`ib_sweeps.runtime`) on a machine without a GPU.

Ray is told the node has 2 GPUs, so its fractional packing and device
assignment are real; TensorFlow sees no GPU here, so its GPU branch is checked
against fakes of ``tf.config`` that record what was set. What only a GPU can
show is listed in docs/explanation/devices.md.
"""

import logging
import os
import stat
from collections import Counter

import pytest

from ib_sweeps import records, runtime

H200_MIB = 143771


@pytest.fixture
def fresh_policy(tf_ready, monkeypatch):
    """This process as if no GPU memory policy had been set yet (restored after the test)."""
    monkeypatch.setattr(runtime, "_policy", None)


class FakeGPUs:
    """Two GPUs in ``tf.config``: records every memory setting; ``initialised`` makes them refuse, as TF does."""

    def __init__(self, monkeypatch, initialised=False):
        import tensorflow as tf

        self.gpus = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(2)]
        self.calls: list[tuple] = []
        self.initialised = initialised
        real_list = tf.config.list_physical_devices

        def fake_list(device_type=None):
            return self.gpus if device_type == "GPU" else real_list(device_type)

        monkeypatch.setattr(tf.config, "list_physical_devices", fake_list)
        monkeypatch.setattr(tf.config.experimental, "set_memory_growth", self._setter("growth"))
        monkeypatch.setattr(tf.config, "set_logical_device_configuration", self._setter("logical"))
        monkeypatch.setattr(
            tf.config, "set_visible_devices", lambda devices, kind: self._setter("visible")(kind, devices)
        )
        monkeypatch.setattr(tf.config.experimental, "get_memory_growth", lambda gpu: False)

    def _setter(self, kind):
        def set_(gpu, value):
            if self.initialised:
                raise RuntimeError("Physical devices cannot be modified after being initialized")
            self.calls.append((kind, getattr(gpu, "name", gpu), value))

        return set_


def test_without_a_gpu_nothing_is_set_and_the_tags_say_so(fresh_policy, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert runtime.device_tags()[records.GPU_MEMORY] == "unset"
    runtime.configure_tensorflow(1, gpu_share=0.5)
    assert runtime.device_tags() == {
        records.GPU_IDS: "env:unset",
        records.GPU_DEVICES: "none",
        records.GPU_MEMORY: runtime.NO_GPU,
    }


@pytest.mark.parametrize("share", [None, 1, 2])
def test_a_whole_gpu_or_no_share_grows_on_every_gpu(fresh_policy, monkeypatch, share):
    fake = FakeGPUs(monkeypatch)
    monkeypatch.setattr(runtime, "gpu_total_mib", lambda: H200_MIB)
    runtime.configure_tensorflow(1, gpu_share=share)
    assert fake.calls == [("growth", g.name, True) for g in fake.gpus]
    tags = runtime.device_tags()
    assert tags[records.GPU_MEMORY] == "growth"
    assert tags[records.GPU_DEVICES] == "/physical_device:GPU:0,/physical_device:GPU:1"


def test_a_fractional_share_limits_every_gpu_to_its_share(fresh_policy, monkeypatch):
    fake = FakeGPUs(monkeypatch)
    monkeypatch.setattr(runtime, "gpu_total_mib", lambda: H200_MIB)
    assert runtime.configure_gpus(0.5) == f"limit:{H200_MIB // 2 - runtime.CONTEXT_MIB}"
    assert [(kind, name) for kind, name, _ in fake.calls] == [("logical", g.name) for g in fake.gpus]
    for _, _, (config,) in fake.calls:  # one logical device per GPU, two fit on one GPU with their contexts
        assert 2 * (config.memory_limit + runtime.CONTEXT_MIB) <= H200_MIB
    assert runtime.device_tags()[records.GPU_MEMORY] == f"limit:{H200_MIB // 2 - runtime.CONTEXT_MIB}"


def test_a_fractional_share_of_a_gpu_of_unknown_size_grows(fresh_policy, monkeypatch):
    fake = FakeGPUs(monkeypatch)
    monkeypatch.setattr(runtime, "gpu_total_mib", lambda: None)
    assert runtime.configure_gpus(0.25) == "growth"
    assert fake.calls == [("growth", g.name, True) for g in fake.gpus]


def test_a_trial_without_a_gpu_share_hides_the_gpus(fresh_policy, monkeypatch):
    """resources.gpus 0 on a node with GPUs: Ray leaves CUDA_VISIBLE_DEVICES unset, so TF must not see them."""
    fake = FakeGPUs(monkeypatch)
    assert runtime.configure_gpus(0) == runtime.HIDDEN
    assert fake.calls == [("visible", "GPU", [])]


def test_the_policy_is_set_once_per_process(fresh_policy, monkeypatch, caplog):
    fake = FakeGPUs(monkeypatch)
    assert runtime.configure_gpus(None) == "growth"
    assert runtime.configure_gpus(None) == "growth" and len(fake.calls) == 2
    with caplog.at_level(logging.WARNING, logger="ib_sweeps.runtime"):
        assert runtime.configure_gpus(0.5) == "growth"
    assert len(fake.calls) == 2 and "share 0.5 ignored" in caplog.text


def test_tensorflow_initialised_first_warns_and_records_its_default(fresh_policy, monkeypatch, caplog):
    FakeGPUs(monkeypatch, initialised=True)
    with caplog.at_level(logging.WARNING, logger="ib_sweeps.runtime"):
        runtime.configure_tensorflow(1)
    assert "already initialised" in caplog.text
    assert runtime.device_tags()[records.GPU_MEMORY] == runtime.TF_FIRST


def test_gpu_size_from_nvidia_smi_of_the_visible_gpus(tmp_path, monkeypatch):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '0, GPU-aaa, 81559'\necho '1, GPU-bbb, 143771'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    for visible, total in [(None, 81559), ("1", 143771), ("GPU-bbb", 143771), ("0,1", 81559), ("2", None), ("", None)]:
        if visible is None:
            monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        else:
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        assert runtime.gpu_total_mib() == total, visible
    smi.write_text("#!/bin/sh\nexit 9\n")
    assert runtime.gpu_total_mib() is None


def test_without_nvidia_smi_the_gpu_size_is_unknown(monkeypatch):
    monkeypatch.setenv("PATH", "")
    assert runtime.gpu_total_mib() is None


# --- Ray told the node has GPUs ------------------------------------------------------------------------------


@pytest.fixture
def ray_with_gpus():
    """A private Ray on loopback that declares 2 GPUs (there are none)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # read at Ray's import: servers on loopback
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    assert not ray.is_initialized()
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_half_gpu_trials_pack_two_per_gpu_and_record_where_they_ran(ray_with_gpus):
    ray = ray_with_gpus

    @ray.remote(num_gpus=0.5, num_cpus=0.25)
    class HalfGPUTrial:
        def configure(self):
            from ib_sweeps import runtime

            runtime.configure_tensorflow(1, gpu_share=0.5)  # what a trial does first
            return runtime.device_tags(), os.environ.get("CUDA_VISIBLE_DEVICES"), os.getpid()

        def gpu_ids(self):
            from ib_sweeps import runtime

            return runtime.assigned_gpus()  # without importing TensorFlow

    trials = [HalfGPUTrial.remote() for _ in range(4)]  # all four hold their half GPU at once
    got = ray.get([t.configure.remote() for t in trials], timeout=120)
    ids = Counter(tags[records.GPU_IDS] for tags, _, _ in got)
    assert ids == {"ray:0": 2, "ray:1": 2}  # two per GPU, both GPUs used
    for tags, visible, _ in got:
        assert tags[records.GPU_IDS] == f"ray:{visible}"  # TensorFlow would see only Ray's GPU
        assert tags[records.GPU_DEVICES] == "none" and tags[records.GPU_MEMORY] == runtime.NO_GPU
    assert len({pid for _, _, pid in got}) == 4
    assert ray.available_resources().get("GPU", 0) == 0
    fifth = HalfGPUTrial.remote().gpu_ids.remote()  # no half GPU left: it waits until one is freed
    assert ray.wait([fifth], timeout=2)[0] == []
    ray.kill(trials[0])
    assert ray.get(fifth, timeout=60) == got[0][0][records.GPU_IDS]  # the half that was freed
