"""``labctl class stop|start``: switch the students' DB systems off outside lab hours, and on again.

Resource Scheduler stops and starts the app VMs (components/operations.py, ``labHours``), but not MySQL DB systems.
Those are stopped through the DB system's own target state: ``oci.mysql.MysqlDbSystem(state=ACTIVE|INACTIVE)``
(pulumi_oci 5.5.0 mysql/mysql_db_system.py:129, "(Updatable) The target state for the DB System"). The provider turns
a change of ``state`` into an in-place update that calls StartDbSystem or StopDbSystem (terraform-provider-oci
v8.28.0 internal/service/mysql/mysql_mysql_db_system_resource.go:1245-1272; ``shutdown_type`` FAST by default,
:3519-3526). While stopped, the shape is not billed, the storage still is (OCI docs "MySQL HeatWave Billing",
https://docs.oracle.com/en-us/iaas/mysql-database/doc/billing2.html: "Stopping a DB system stops billing for all
shapes associated with it. However, billing continues for storage").

Why through Pulumi and not the OCI SDK: the program is the source of truth for the DB system. A stop made behind
Pulumi's back leaves the stack's state saying ACTIVE; ``pulumi refresh`` then reports drift, and any stack that sets
``state`` would start the system again at the next ``pulumi up``. Setting the stack's config ``dbState`` and running
``pulumi up`` records the wanted state where every later ``up`` sees it (the cloud runner's ``set_all_config`` writes
``Pulumi.<stack>.yaml``, and a later ``labctl class up`` only sets the keys it owns, so the DB stays stopped until
``labctl class start``). The run goes through the same machinery as ``labctl class up``: the out-dir lock (a cron
``stop`` never overlaps a running ``up``), retries, state, reports, ``--resume`` (a stack already stopped with the
same config and program is skipped).
"""

from __future__ import annotations

from dataclasses import replace

from labctl.runners import StackJob

DB_STATE_KEY = "oci-dblab:dbState"
POWER = {"stop": "INACTIVE", "start": "ACTIVE"}


def power_jobs(jobs: list[StackJob], verb: str) -> list[StackJob]:
    """Each student's job with the DB system's target state for ``verb`` (stop -> INACTIVE, start -> ACTIVE)."""
    if verb not in POWER:
        raise ValueError(f"unknown power verb {verb!r}; known: {', '.join(POWER)}")
    return [replace(j, config={**j.config, DB_STATE_KEY: POWER[verb]}) for j in jobs]


def title(verb: str) -> str:
    """The reports' title: says what was asked (the runner's kind is added by the report)."""
    return f"oci-dblab class {verb} (DB systems {POWER[verb]})"


def runner_note(verb: str, offline: bool) -> str:
    """One line for the operator before the run: what will happen to the DB systems."""
    state, done = POWER[verb], {"stop": "stopped", "start": "started"}[verb]
    if offline:
        return (
            f"offline runner: nothing is {done}; each stack is planned with dbState {state} (the plans in "
            "<out-dir>/plans/ show the DB system's state)"
        )
    return f"cloud runner: `pulumi up` of each stack with dbState {state} (each DB system is {done} in place)"
