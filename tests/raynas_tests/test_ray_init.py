"""``tune_cfg.ray``: how the pipeline starts or joins Ray, and the workers' environment."""

from __future__ import annotations

import os

import pytest

from raynas.tune.options import ray_init_kwargs, resolve_tune_cfg


def test_local_ray_gets_cpus_and_the_default_worker_env() -> None:
    opts = resolve_tune_cfg({"ray": {"num_cpus": 2}})["ray"]
    kwargs = ray_init_kwargs(opts, None, {})
    assert kwargs["num_cpus"] == 2 and "address" not in kwargs
    assert kwargs["runtime_env"] == {"env_vars": {"GOMP_SPINCOUNT": "1000"}}


def test_user_env_vars_merge_and_none_drops_a_default() -> None:
    opts = resolve_tune_cfg({"ray": {"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}}})["ray"]
    assert opts["env_vars"] == {"GOMP_SPINCOUNT": "1000", "OMP_WAIT_POLICY": "PASSIVE"}
    opts = resolve_tune_cfg({"ray": {"env_vars": {"GOMP_SPINCOUNT": None}}})["ray"]
    assert "runtime_env" not in ray_init_kwargs(opts, None, {})


def test_driver_environment_wins_and_a_cluster_keeps_its_resources() -> None:
    opts = resolve_tune_cfg({"ray": {"num_cpus": 4, "env_vars": {"A": 1}}})["ray"]
    kwargs = ray_init_kwargs(opts, "auto", {"GOMP_SPINCOUNT": "300000"})
    assert kwargs["address"] == "auto" and "num_cpus" not in kwargs
    assert kwargs["runtime_env"] == {"env_vars": {"A": "1"}}


@pytest.mark.ray
def test_workers_see_the_env_vars() -> None:
    import ray

    opts = resolve_tune_cfg({"ray": {"num_cpus": 1}})["ray"]
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    ray.init(**ray_init_kwargs(opts, None, env))
    try:
        value = ray.get(ray.remote(lambda: os.environ.get("GOMP_SPINCOUNT")).remote())
    finally:
        ray.shutdown()
    assert value == "1000"
