"""Child processes forked from a server that has imported torch and vertspine once.

A fresh interpreter spends seconds importing torch, detectron2 and vertspine; the suite runs
train_net.py about twenty times. multiprocessing's "forkserver" imports them once, in a process
that computes nothing (so no thread pool is forked), and forks a child per process started
through ``CONTEXT``. ``run_script`` runs a script there as ``__main__`` (``start_script`` starts
one and returns) with the ``sys.argv``, environment and working directory a subprocess would get,
its stdout and stderr in files.
"""
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile

CONTEXT = multiprocessing.get_context("forkserver")
CONTEXT.set_forkserver_preload(["vertspine", "detectron2.engine", "detectron2.evaluation"])


def _run_as_main(script, args, cwd, env, stdout_path, stderr_path):
    """In the forked child: redirect fds 1 and 2, then run ``script`` as ``__main__``."""
    for fd, path in ((1, stdout_path), (2, stderr_path)):
        file_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(file_fd, fd)
        os.close(file_fd)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


def start_script(script, args, *, cwd, stdout_path, stderr_path):
    """Start ``script ARGS`` in a forked child, its stdout and stderr written to the two paths;
    returns the started ``multiprocessing`` process (``is_alive``, ``kill``, ``join``,
    ``exitcode``: 1 for an uncaught exception)."""
    child = CONTEXT.Process(target=_run_as_main, args=(
        script, list(args), cwd, dict(os.environ), stdout_path, stderr_path))
    child.start()
    return child


def run_script(script, args, *, cwd, timeout):
    """Run ``script ARGS`` in a forked child; returns a ``subprocess.CompletedProcess`` with the
    exit code (1 for an uncaught exception, whose traceback is in stderr) and the text output.

    Raises:
        subprocess.TimeoutExpired: the child ran longer than ``timeout`` seconds (it is killed).
    """
    with tempfile.TemporaryDirectory(prefix="preloaded_process_") as folder:
        stdout_path, stderr_path = (os.path.join(folder, name) for name in ("stdout", "stderr"))
        child = start_script(script, args, cwd=cwd, stdout_path=stdout_path,
                             stderr_path=stderr_path)
        child.join(timeout)
        if child.is_alive():
            child.kill()
            child.join()
            raise subprocess.TimeoutExpired([script, *args], timeout)
        with open(stdout_path) as out, open(stderr_path) as err:
            return subprocess.CompletedProcess([script, *args], child.exitcode, out.read(),
                                               err.read())
