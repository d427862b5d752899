"""A two-worker Dask cluster on loopback for the tests that need one."""

import contextlib

import pytest


@contextlib.contextmanager
def local_client():
    """`distributed.Client` of a two-worker in-process LocalCluster bound to 127.0.0.1."""
    distributed = pytest.importorskip('distributed')
    # tcp on 127.0.0.1: with the default in-process transport the scheduler's
    # HTTP server would listen on every interface; that server on a free
    # loopback port: another cluster on the machine may hold the default 8787
    # (a UserWarning)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  protocol='tcp://', host='127.0.0.1',
                                  dashboard_address=None, worker_dashboard_address=None,
                                  scheduler_kwargs={'dashboard': False,
                                                    'dashboard_address': '127.0.0.1:0'}
                                  ) as cluster, distributed.Client(cluster) as client:
        yield client
