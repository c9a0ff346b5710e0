"""Multi-process launch that works with and without GPUs, with one command line.

On a machine with enough GPUs this is detectron2's own ``launch`` (one process per GPU, NCCL),
unchanged. Without GPUs, ``--num-gpus N`` starts N CPU processes that talk over gloo, because
detectron2 0.6's launch asserts CUDA and its ``create_ddp_model`` passes ``device_ids``, which
DistributedDataParallel rejects for CPU modules.
"""
import logging
import os
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.engine import launch as detectron2_launch
from detectron2.utils import comm
from torch.nn.parallel import DistributedDataParallel

__all__ = ["launch", "create_ddp_model", "uses_gpu_launch"]

DEFAULT_TIMEOUT = timedelta(minutes=30)
logger = logging.getLogger(__name__)


def uses_gpu_launch(num_processes_per_machine: int) -> bool:
    """True when the processes get one GPU each (NCCL); False for the CPU/gloo path."""
    return torch.cuda.is_available() and num_processes_per_machine <= torch.cuda.device_count()


def _find_free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(
    main_func,
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str = "auto",
    args=(),
    timeout: timedelta = DEFAULT_TIMEOUT,
):
    """Run ``main_func(*args)`` in ``num_gpus_per_machine`` processes on each machine.

    Args:
        main_func: the function each process runs.
        num_gpus_per_machine: processes per machine (one per GPU; on a machine without GPUs,
            the number of CPU processes).
        num_machines, machine_rank: as in detectron2.
        dist_url: "auto" (a free port on localhost, single machine) or e.g. "tcp://host:port".
        args: arguments of ``main_func``.
        timeout: timeout of the collective operations.
    Raises:
        ValueError: fewer than one process per machine or one machine (nothing would run).
    """
    if num_gpus_per_machine < 1 or num_machines < 1:
        raise ValueError(
            f"--num-gpus {num_gpus_per_machine} --num-machines {num_machines}: both must be at "
            "least 1, or nothing runs. --num-gpus is the number of processes per machine: one "
            "per GPU, or CPU processes where there is no GPU (--num-gpus 1 for one CPU process).")
    if uses_gpu_launch(num_gpus_per_machine) or num_machines * num_gpus_per_machine == 1:
        return detectron2_launch(
            main_func, num_gpus_per_machine, num_machines, machine_rank, dist_url, args, timeout
        )
    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError("--dist-url auto works on one machine; give tcp://HOST:PORT.")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    logger.info(
        "No GPU: starting %d CPU processes per machine with the gloo backend.", num_gpus_per_machine
    )
    mp.start_processes(
        _cpu_worker,
        nprocs=num_gpus_per_machine,
        args=(main_func, num_machines, num_gpus_per_machine, machine_rank, dist_url, args, timeout),
        daemon=False,
        start_method="spawn",
    )


def _cpu_worker(
    local_rank, main_func, num_machines, num_per_machine, machine_rank, dist_url, args, timeout
):
    """One CPU process: join the gloo group, set detectron2's local group, run main_func."""
    world_size = num_machines * num_per_machine
    global_rank = machine_rank * num_per_machine + local_rank
    dist.init_process_group(
        backend="gloo", init_method=dist_url, world_size=world_size, rank=global_rank,
        timeout=timeout,
    )
    for machine in range(num_machines):
        group = dist.new_group(list(range(machine * num_per_machine, (machine + 1) * num_per_machine)))
        if machine == machine_rank:
            comm._LOCAL_PROCESS_GROUP = group
    # share the cores between the processes of this machine instead of oversubscribing them
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_per_machine))
    comm.synchronize()
    try:
        main_func(*args)
    finally:
        dist.destroy_process_group()


def create_ddp_model(model: torch.nn.Module, **kwargs) -> torch.nn.Module:
    """Wrap ``model`` in DistributedDataParallel when there is more than one process.

    ``device_ids`` is set to the local GPU only for a model on CUDA; a CPU model gets none.
    """
    if comm.get_world_size() == 1:
        return model
    on_cuda = next(model.parameters()).is_cuda
    if on_cuda and "device_ids" not in kwargs:
        kwargs["device_ids"] = [comm.get_local_rank()]
    return DistributedDataParallel(model, **kwargs)
