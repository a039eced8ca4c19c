#!/usr/bin/env bash
# evolve run across two nodes, as a cluster's hostfile starts it: mpirun
# launches a daemon per node through its ssh agent (node_agent.sh, which
# gives each its own host name on this machine) and the ranks talk over TCP.
# Checks: the records of one process, each rank's throughput under its own
# node's name (records and report); a rank killed on the other node, whose
# process rank 0 cannot watch, ends the run with rank 0's one line (mpirun's
# own message names the rank) and a checkpoint that resumes to the
# uninterrupted result; a node without the data (node_agent.sh hides it
# there) ends the run before it starts with one line naming the rank and
# its node. Exits 77 (skipped) where UTS and mount namespaces cannot be made
# (unshare needs CAP_SYS_ADMIN). Usage: mpi_two_nodes.sh EVOLVE DATA_DIR MPIRUN
set -euo pipefail
source "$(dirname "$0")/with_mnist.sh" "$1" "$2"
mpirun=$3
source "$(dirname "$0")/mpi_helpers.sh"
trap 'rm -rf "$tmp"' EXIT
agent=$(realpath "$(dirname "$0")/node_agent.sh")
unshare --uts --mount true 2>/dev/null || { echo "skipped: unshare --uts --mount is not permitted here"; exit 77; }
printf '127.0.0.2 slots=1\n127.0.0.3 slots=1\n' >"$tmp/hosts"  # rank 0 on node-2, rank 1 on node-3
nodes() {
  "$mpirun" --allow-run-as-root --hostfile "$tmp/hosts" -np 2 --mca plm_rsh_agent "$agent" \
    --mca oob_tcp_if_include lo --mca btl_tcp_if_include lo "$evolve" "$@"
}

echo "== two nodes: the records of one process, each rank's throughput under its node's name"
"$evolve" "${small[@]}" --out "$tmp/one" >/dev/null
nodes "${small[@]}" --out "$tmp/two" >/dev/null
same "$tmp/one" "$tmp/two"
python3 - "$tmp/two" <<'PY'
import json, sys
for line in open(f"{sys.argv[1]}/generations.jsonl"):
    hosts = [r["host"] for r in json.loads(line)["throughput"]["ranks"]]
    assert hosts == ["node-2", "node-3"], f"the ranks ran on {hosts}, not on node-2 and node-3"
PY
grep -q "([0-9]* nets on node-2), [0-9.]* ([0-9]* nets on node-3)" "$tmp/two/report.html" ||
  { echo "the report does not name each rank's node"; exit 1; }

echo "== a rank killed on the other node: rank 0's line, mpirun's names the rank; resume on both nodes"
"$evolve" "${longer[@]}" --out "$tmp/whole" >/dev/null
signal_rank1 KILL "$tmp/killed" nodes "${longer[@]}"
one_line "evolve: error: mpirun ended the run (a rank died: mpirun's message names it); the last good checkpoint \
is $tmp/killed/checkpoint.json.*--resume $tmp/killed" "$tmp/killed.err"
grep -q "process rank 1 .*exited on signal 9" "$tmp/killed.err" ||
  { echo "mpirun's message does not name rank 1:"; cat "$tmp/killed.err"; exit 1; }
nodes run --quiet --resume "$tmp/killed" --data-dir "$data_dir" >/dev/null
same "$tmp/whole" "$tmp/killed"
echo "== a node without the data: one line naming the rank, its node and what to do; no run directory"
set +e
NODE_AGENT_EMPTY="127.0.0.3 $data_dir" nodes "${small[@]}" --out "$tmp/nodata" >/dev/null 2>"$tmp/nodata.err"
rc=$?
set -e
[ "$rc" -ne 0 ] || { echo "a node without the data must end the run with a non-zero status"; exit 1; }
one_line "^evolve: error: rank 1 on node-3: $data_dir/mnist/.*missing.*run scripts/setup.sh" "$tmp/nodata.err"
[ ! -e "$tmp/nodata" ] || { echo "a run that could not start left $tmp/nodata"; exit 1; }
echo "mpi two nodes: all checks passed"
