#!/usr/bin/env bash
# evolve run under mpirun (OpenMPI, CPU backend): the population spread over
# K ranks gives exactly the records of one process, for uneven shares (7 nets
# on 2 and 3 ranks), over TCP as between nodes, and for more ranks than nets
# (3 nets on 4 ranks); a rank killed mid-run ends it with rank 0's one line
# naming that rank and the checkpoint, which then resumes on another number
# of ranks to the uninterrupted result; a rank that hangs ends it after
# --rank-timeout with a line naming that rank; modes other than run refuse
# mpirun. Usage: mpi_ranks.sh EVOLVE DATA_DIR MPIRUN
set -euo pipefail
source "$(dirname "$0")/with_mnist.sh" "$1" "$2"
mpirun=$3
source "$(dirname "$0")/mpi_helpers.sh"
trap 'rm -rf "$tmp"' EXIT
mpi() { local k=$1; shift; "$mpirun" --oversubscribe --allow-run-as-root -np "$k" "$evolve" "$@"; }

echo "== 1, 2 and 3 ranks: the same records"
"$evolve" "${small[@]}" --out "$tmp/one" >/dev/null
mpi 2 "${small[@]}" --out "$tmp/two" >/dev/null
same "$tmp/one" "$tmp/two"
mpi 3 "${small[@]}" --out "$tmp/three" >/dev/null
same "$tmp/one" "$tmp/three"

echo "== the transport between machines (TCP on the loopback, no shared memory): the same records"
# What a cluster's ranks on different nodes use; the runs above took shared memory.
"$mpirun" --oversubscribe --allow-run-as-root --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include lo -np 2 \
  "$evolve" "${small[@]}" --out "$tmp/tcp" >/dev/null
same "$tmp/one" "$tmp/tcp"

echo "== more ranks than nets (2 individuals + 1 control on 4 ranks)"
few=("${small[@]}" -P 2 --set ga.tournament=2 --set ga.elites=1 --set fitness.controls=finetune --set fitness.finalists=2)
"$evolve" "${few[@]}" --out "$tmp/few1" >/dev/null
mpi 4 "${few[@]}" --out "$tmp/few4" >/dev/null
same "$tmp/few1" "$tmp/few4"

echo "== a rank killed mid-run: rank 0's line, then resume on 3 ranks"
"$evolve" "${longer[@]}" --out "$tmp/whole" >/dev/null
signal_rank1 KILL "$tmp/killed" mpi 2 "${longer[@]}"
one_line "evolve: error: rank 1 died (killed or crashed) and mpirun ended the run; the last good checkpoint is \
$tmp/killed/checkpoint.json.*--resume $tmp/killed" "$tmp/killed.err"
mpi 3 run --quiet --resume "$tmp/killed" --data-dir "$data_dir" >/dev/null
same "$tmp/whole" "$tmp/killed"

echo "== a rank that hangs: ended after --rank-timeout, naming it; resume in one process"
# The timeout must outlast a healthy rank's share of a generation, also in a
# sanitizer build on a busy machine (a 2 s timeout fired there in generation 0).
signal_rank1 STOP "$tmp/hung" mpi 2 "${longer[@]}" --rank-timeout 45
# The line names the rank's machine, learnt when the job started (the hung rank cannot say).
one_line "evolve: error: rank 1 on $(hostname) sent nothing within 45 s (--rank-timeout).*--resume $tmp/hung" \
  "$tmp/hung.err"
"$evolve" run --quiet --resume "$tmp/hung" --data-dir "$data_dir" >/dev/null
same "$tmp/whole" "$tmp/hung"

echo "== other modes refuse mpirun"
set +e
mpi 2 eval --rule finetune --data-dir "$data_dir" >/dev/null 2>"$tmp/eval.err"
rc=$?
set -e
[ "$rc" -ne 0 ] && grep -q "only evolve run spreads over MPI ranks" "$tmp/eval.err" ||
  { echo "eval under mpirun must refuse:"; cat "$tmp/eval.err"; exit 1; }
echo "mpi: all checks passed"
