// The processes of a run started by mpirun (OpenMPI): rank 0 runs the GA and
// writes the run directory, every rank trains its share of each generation's
// nets. Without MPI (a build without it, or evolve started directly) there is
// one rank and nothing is sent. Messages are byte strings; every wait polls
// and sleeps (an idle rank leaves the cores to the busy ones, where MPI's own
// blocking calls would spin) and ends at a deadline, naming the peer.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace evoplast::apps {

// A rank that did not answer within its time, or answered with an error.
struct RankFailure : std::runtime_error {
  int rank;
  bool timed_out;
  RankFailure(int rank_, bool timed_out_, const std::string& what) : std::runtime_error(what), rank(rank_), timed_out(timed_out_) {}
};

// The GPU a rank takes, as the CUDA_VISIBLE_DEVICES it runs with: the
// local_rank-th entry of `visible` (the user's list: indices or UUIDs; more
// ranks than entries share them in turn), or local_rank where the user set
// none (visible null). A list that is set but names no device ("") stays
// as it is: the user hid the GPUs.
std::string device_for_local_rank(const char* visible, int local_rank);

class Ranks {
 public:
  // Joins the MPI job when started by mpirun (and built with MPI).
  Ranks(int* argc, char*** argv);
  ~Ranks();  // MPI_Finalize, unless abort() ran
  Ranks(const Ranks&) = delete;
  Ranks& operator=(const Ranks&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }  // among the ranks on this machine
  int local_size() const { return local_size_; }
  bool distributed() const { return size_ > 1; }
  // The name of the machine rank r runs on (every rank's, learnt when the job
  // starts), so a failure names the node where on a cluster its fix lies.
  const std::string& host(int r) const { return hosts_[std::size_t(r)]; }

  // Bytes to rank `to`, tagged; waits until they are taken, at most timeout_s
  // (< 0: forever). Throws RankFailure naming the peer.
  void send(int to, int tag, const std::vector<std::uint8_t>& bytes, double timeout_s) const;
  // The next bytes tagged `tag` from rank `from`; at most timeout_s (< 0: forever).
  std::vector<std::uint8_t> receive(int from, int tag, double timeout_s) const;

  // Under mpirun, each rank on a machine takes its own GPU: the local_rank-th
  // entry of CUDA_VISIBLE_DEVICES where the user set it (their list is the
  // override), else device local_rank. Nothing for a single process.
  void pin_device() const;

  // Ends every rank of the job now (MPI_Abort): for a peer that hangs.
  [[noreturn]] void abort(int code);

  // What rank 0 says if mpirun ends it (it does when another rank dies): one
  // line naming the rank that died where it ran on this machine (else
  // pointing to mpirun's message), then `advice`, set as the run goes so it
  // names the last good checkpoint.
  static void set_last_words(const std::string& advice);
  // The other ranks on rank 0's machine, (rank, process id), for that line.
  static void watch_local_ranks(const std::vector<std::pair<int, int>>& rank_pids);

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  bool mpi_ = false;
  std::vector<std::string> hosts_;  // [size_]
};

// Which of n nets rank r of K trains: an even split, the first n mod K ranks
// one more; ranks past n (K > n) train none.
struct Share {
  int first = 0, count = 0;
};
inline Share share_of(int n, int r, int K) {
  const int base = n / K, extra = n % K;
  return {r * base + (r < extra ? r : extra), base + (r < extra ? 1 : 0)};
}

// CPU threads of one rank: the configured count, or (0: all) the machine's
// cores shared among the ranks on it.
inline int rank_threads(int configured, const Ranks& ranks) {
  if (configured > 0 || ranks.local_size() <= 1) return configured;
  const int cores = int(std::thread::hardware_concurrency());
  return cores / ranks.local_size() > 1 ? cores / ranks.local_size() : 1;
}

// True when this evolve was built with MPI.
bool built_with_mpi();

}  // namespace evoplast::apps
