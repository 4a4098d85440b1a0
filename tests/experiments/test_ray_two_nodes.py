"""A sweep on a real two-node Ray cluster (ray.cluster_utils.Cluster: two raylets with their own resources and ports,
both on this machine) survives losing a node mid-run: the runs it held are retried on the other node, every run key is
recorded done exactly once, and the verdicts and finals are the local executor's on the same spec."""
from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from archlab.experiments.engine import RunOptions, run_specs
from archlab.experiments.spec import spec_from_dict
from archlab.experiments.sweep.executors import InlineExecutor, RayExecutor
from archlab.experiments.sweep.store import Store

ray = pytest.importorskip("ray", reason="Ray is the optional 'ray' extra (the dev extra installs it)")
psutil = pytest.importorskip("psutil", reason="psutil (a Ray dependency) finds the runs on the node to kill")

# the GCS notices a killed raylet within ~1.5 s instead of Ray's default ~30 s
FAST_HEALTH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500, "health_check_failure_threshold": 3}


def toy_spec():
    """Two variants × 6 seeds (a verdict needs ≥ 6 paired seeds) of the toy run, 1 s each (a node dies mid-run)."""
    return spec_from_dict({
        "name": "toy_two_nodes", "seed": "000", "quote": "q", "runner": "toy",
        "base": {"toy": {"quality": 1.0, "noise": 0.01, "sleep": 1.0}},
        "variants": {"base": {}, "worse": {"toy.quality": 1.5}}, "seeds": list(range(6)), "budget": {"steps": 20},
        "compare": [{"variant": "worse"}]})


@pytest.fixture
def two_nodes():
    """A head node and a second node, 2 CPUs each; this process is the driver. Skips when Ray cannot start."""
    from ray.cluster_utils import Cluster

    # both nodes on this machine's own address (Ray's default): a driver given 127.0.0.1 would connect to this
    # machine's address instead (ray.init rewrites localhost), where a head bound to 127.0.0.1 never answers
    try:
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 2, "include_dashboard": False, "_system_config": FAST_HEALTH})
        second = cluster.add_node(num_cpus=2)
        ray.init(address=cluster.address, include_dashboard=False, configure_logging=False, log_to_driver=False)
    except Exception as e:  # noqa: BLE001 - no Ray on this machine (ports, shared memory): not this test's subject
        pytest.skip(f"cannot start a two-node Ray cluster here: {type(e).__name__}: {e}")
    try:
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        yield cluster, second
    finally:
        ray.shutdown()
        cluster.shutdown()


def runs_on(node) -> set[int]:
    """The run keys (store ids) whose Ray worker processes live under `node`'s raylet (named archlab-run-KEY)."""
    from ray._private import ray_constants

    raylet = psutil.Process(node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid)
    keys = set()
    for proc in raylet.children(recursive=True):
        try:
            title = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if "archlab-run-" in title:
            keys.add(int(title.split("archlab-run-")[1].split()[0]))
    return keys


def kill_when_busy(cluster, node, killed: dict, timeout: float = 60.0) -> None:
    """Kill `node` (its raylet and workers, no graceful drain) as soon as a run executes on it."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        keys = runs_on(node)
        if keys:
            killed["keys"] = keys
            cluster.remove_node(node, allow_graceful=False)
            return
        time.sleep(0.1)


def verdicts(results):
    return [(r.spec.name, r.verdict, [(c.label, c.verdict.label, c.verdict.n, c.verdict.p) for c in r.comparisons])
            for r in results]


def finals(db):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT r.variant, r.seed, f.name, f.value FROM runs r JOIN finals f ON f.run_id = r.id "
                       "ORDER BY r.variant, r.seed, f.name").fetchall()
    con.close()
    return rows


@pytest.mark.slow
def test_sweep_survives_a_lost_node(two_nodes, tmp_path):
    cluster, second = two_nodes
    spec, lines, killed = toy_spec(), [], {}
    killer = threading.Thread(target=kill_when_busy, args=(cluster, second, killed), daemon=True)
    with Store(tmp_path / "ray.sqlite") as st, RayExecutor() as ex:
        assert ex.capacity() == 4  # both nodes' CPUs: runs land on the second node too
        killer.start()
        ray_results = run_specs([spec], st, ex, RunOptions(out_dir=tmp_path / "ray", log=lines.append))
        killer.join()
        rows = st.runs("toy_two_nodes")
    assert killed.get("keys"), "no run was seen on the second node"
    assert len([n for n in ray.nodes() if n["Alive"]]) == 1
    sweep = ray_results[0].sweep
    # the runs the lost node held were started again (on the only node left) and finished there
    retried = {r["id"] for r in rows if r["attempts"] == 2}
    assert killed["keys"] & retried and sweep.retried == len(retried) >= 1
    assert sweep.ran == 12 and sweep.failed == 0 and max(r["attempts"] for r in rows) == 2
    assert [r["status"] for r in rows] == ["done"] * 12
    assert len({r["run_key"] for r in rows}) == 12  # each run key recorded once...
    finished = [line for line in lines if "val_loss=" in line]
    assert len(finished) == 12  # ...and finished once: a lost attempt leaves no second record
    assert sum("NodeDiedError" in line or "Ray worker lost" in line for line in lines) == len(retried)

    with Store(tmp_path / "local.sqlite") as st, InlineExecutor() as ex:
        local_results = run_specs([spec], st, ex, RunOptions(out_dir=tmp_path / "local", log=None))
    assert verdicts(ray_results) == verdicts(local_results)
    first = ray_results[0].comparisons[0].verdict
    assert first.verdict != "no verdict" and first.n == 6
    assert finals(tmp_path / "ray.sqlite") == finals(tmp_path / "local.sqlite")


def test_a_worker_with_other_archlab_code_fails_its_run():
    """Every node must run the same archlab: a run a worker executed with another code hash is not recorded as
    done under the driver's run key (whose code hash did not produce it)."""
    from archlab.experiments.spec.identity import code_hash
    from archlab.experiments.sweep.executors import _same_code

    ok = {"ok": True, "result": {"final": {}}, "wall": 1.0, "host": "node-b"}
    assert _same_code({**ok, "code_hash": code_hash()}) == ok
    bad = _same_code({**ok, "code_hash": "0123456789ab"})
    assert not bad["ok"] and bad["error"] == (
        f"the Ray worker on node-b runs archlab code 0123456789ab, the driver {code_hash()}: install the same archlab "
        "(the same source) on every node")


def test_a_head_bound_to_localhost_only_is_one_line_not_a_hang():
    """ray.init rewrites 127.0.0.1 to this machine's address: a head listening on 127.0.0.1 only would never be
    reached (Ray retries for ever), so --ray-address 127.0.0.1:PORT says so at once."""
    import socket

    from ray._private.services import get_node_ip_address

    from archlab.config import ConfigError
    from archlab.experiments.sweep.executors import check_reachable

    mine = get_node_ip_address()
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        if mine == "127.0.0.1":
            check_reachable(f"127.0.0.1:{port}")  # no other address: nothing is rewritten
            return
        with pytest.raises(ConfigError) as e:
            check_reachable(f"127.0.0.1:{port}")
    assert str(e.value) == (f"--ray-address 127.0.0.1:{port}: Ray connects to this machine's address {mine}:{port} "
                            f"instead of 127.0.0.1, and no Ray head answers there; start the head on that address "
                            f"(`ray start --head --port={port}`, without --node-ip-address=127.0.0.1)")
