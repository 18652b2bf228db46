"""What a Ray task costs beyond its work: submit, schedule on a warm worker, return, as
``--executor ray`` submits each black box, fit and scoring (2 CPUs declared, threads pinned).

    pytest tests/benchmarks/test_ray_overhead.py --benchmark-enable

One round is one task that returns at once (``empty``) or returns 4 MB, about a scoring task's outcome
(``4MB``); ``local`` is the same function called in-process. Measured on a 2-core AMD EPYC (Zen 5,
AVX-512), Ray 2.60, a local Ray: see the README's "Run on Ray" for the numbers.
"""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray", reason="the ray extra: pip install -e '.[ray]'")


def work(size: int) -> bytes:
    import torch

    torch.set_num_threads(2)  # as every task of --executor ray pins its threads
    return bytes(size)


@pytest.fixture(scope="module")
def local_ray():
    import sys

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import a test module
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", configure_logging=False)
    task = ray.remote(work).options(num_cpus=2)
    ray.get(task.remote(0))  # a warm worker, as in a run after its first task
    yield task
    ray.shutdown()


@pytest.mark.parametrize("size", [0, 4 << 20], ids=["empty", "4MB"])
def test_ray_task_round_trip(benchmark, local_ray, size):
    out = benchmark(lambda: ray.get(local_ray.remote(size)))
    assert len(out) == size


@pytest.mark.parametrize("size", [0, 4 << 20], ids=["empty", "4MB"])
def test_local_call(benchmark, size):
    out = benchmark(work, size)
    assert len(out) == size
