#!/bin/sh
# Stands in for ssh as mpirun's launch agent (--mca plm_rsh_agent) so that one
# machine holds two "nodes": mpirun calls it as `node_agent.sh HOST COMMAND...`
# for each host of the hostfile that is not this machine, and it runs the
# command (OpenMPI's daemon, orted) here, as ssh's remote shell would, in a
# UTS namespace of its own whose host name is node-<last part of HOST>.
# The daemon and its ranks then see another machine's name: MPI keeps them
# off shared memory, counts local ranks per node, and evolve's rank 0 cannot
# watch their processes, as on a cluster. Process ids, files and the network
# stay shared (a cluster's shared file system; TCP on the loopback), except
# that NODE_AGENT_EMPTY="HOST DIR" shows DIR empty on HOST (a tmpfs over it,
# in a mount namespace of that node's own): a node that lacks the data.
host=$1
shift
hide=
case "${NODE_AGENT_EMPTY:-}" in
  "$host "*) hide="mount -t tmpfs none '${NODE_AGENT_EMPTY#* }' && " ;;
esac
exec unshare --uts --mount sh -c "hostname node-${host##*.} && $hide$*"
