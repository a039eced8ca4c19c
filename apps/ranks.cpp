#include "apps/ranks.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <thread>

#ifdef EVOPLAST_HAVE_MPI
#include <mpi.h>
#endif

namespace evoplast::apps {
namespace {

using Clock = std::chrono::steady_clock;

// The last words, double-buffered so the signal handler always reads a whole
// line: "evolve: error: " + who ended the run + "; " + the advice.
char words[2][1024];
std::atomic<int> current_words{-1};
// The other ranks on this machine (rank, pid): the handler names the one
// whose process is gone. mpirun reaps a rank that died before it ends the
// others, so that rank's pid no longer exists when rank 0 hears of it.
constexpr int kMaxWatched = 256;
int watched_rank[kMaxWatched], watched_pid[kMaxWatched];
std::atomic<int> watched{0};

void say(const char* text) {
  const ssize_t ignored = write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

// Async-signal-safe: write, kill and plain memory only.
extern "C" void say_last_words(int) {
  const int i = current_words.load();
  if (i < 0) _exit(1);
  int dead = -1;
  for (int k = 0, n = watched.load(); k < n && dead < 0; ++k)
    if (kill(watched_pid[k], 0) == -1 && errno == ESRCH) dead = watched_rank[k];
  say("evolve: error: ");
  if (dead >= 0) {
    char digits[12];
    int len = 0;
    for (int v = dead; len == 0 || v > 0; v /= 10) digits[len++] = char('0' + v % 10);
    char rank_text[16] = "rank ";
    for (int k = 0; k < len; ++k) rank_text[5 + k] = digits[len - 1 - k];
    rank_text[5 + len] = 0;
    say(rank_text);
    say(" died (killed or crashed) and mpirun ended the run; ");
  } else {
    say("mpirun ended the run (a rank died: mpirun's message names it); ");
  }
  say(words[i]);
  _exit(1);
}

bool deadline_passed(Clock::time_point start, double timeout_s) {
  return timeout_s >= 0 && std::chrono::duration<double>(Clock::now() - start).count() > timeout_s;
}

void nap() { std::this_thread::sleep_for(std::chrono::milliseconds(1)); }

constexpr std::size_t kHostChars = 256;  // a host name and its NUL (Linux's HOST_NAME_MAX is 64)

std::string this_host() {
  char name[kHostChars] = {};
  return gethostname(name, kHostChars - 1) == 0 ? std::string(name) : std::string("?");
}

}  // namespace

void Ranks::watch_local_ranks(const std::vector<std::pair<int, int>>& rank_pids) {
  int n = 0;
  for (const auto& [rank, pid] : rank_pids)
    if (n < kMaxWatched && pid > 0) {
      watched_rank[n] = rank;
      watched_pid[n] = pid;
      ++n;
    }
  watched.store(n);
}

void Ranks::set_last_words(const std::string& advice) {
  const int next = current_words.load() == 0 ? 1 : 0;
  const std::string text = advice.substr(0, sizeof words[0] - 2) + "\n";
  std::memcpy(words[next], text.c_str(), text.size() + 1);
  current_words.store(next);
}

std::string device_for_local_rank(const char* visible, int local_rank) {
  if (!visible) return std::to_string(local_rank);
  std::vector<std::string> devices;
  std::string entry;
  for (const char* c = visible;; ++c) {
    if (*c == ',' || *c == 0) {
      if (!entry.empty()) devices.push_back(entry);
      entry.clear();
      if (*c == 0) break;
    } else if (*c != ' ') {
      entry += *c;
    }
  }
  return devices.empty() ? std::string(visible) : devices[std::size_t(local_rank) % devices.size()];
}

void Ranks::pin_device() const {
  if (size_ <= 1) return;
  setenv("CUDA_VISIBLE_DEVICES", device_for_local_rank(std::getenv("CUDA_VISIBLE_DEVICES"), local_rank_).c_str(), 1);
}

#ifdef EVOPLAST_HAVE_MPI

bool built_with_mpi() { return true; }

Ranks::Ranks(int* argc, char*** argv) {
  // Only a process that mpirun started joins a job (a singleton MPI_Init
  // would start a runtime for nothing).
  hosts_ = {this_host()};
  if (!std::getenv("OMPI_COMM_WORLD_SIZE") && !std::getenv("PMIX_RANK")) return;
  MPI_Init(argc, argv);
  mpi_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &local_rank_);
  MPI_Comm_size(local, &local_size_);
  MPI_Comm_free(&local);
  // Every rank's machine, once: a failure later names the node (a rank that
  // hangs or dies cannot say where it is then).
  std::vector<char> mine(kHostChars, 0), all(kHostChars * std::size_t(size_), 0);
  std::memcpy(mine.data(), hosts_[0].data(), std::min(hosts_[0].size(), kHostChars - 1));
  MPI_Allgather(mine.data(), int(kHostChars), MPI_CHAR, all.data(), int(kHostChars), MPI_CHAR, MPI_COMM_WORLD);
  hosts_.clear();
  for (int r = 0; r < size_; ++r) hosts_.emplace_back(all.data() + std::size_t(r) * kHostChars);
  // mpirun ends the others with SIGTERM when a rank dies: rank 0 then says
  // where the run can continue from.
  if (rank_ == 0 && size_ > 1) std::signal(SIGTERM, say_last_words);
}

Ranks::~Ranks() {
  if (mpi_) MPI_Finalize();
}

void Ranks::send(int to, int tag, const std::vector<std::uint8_t>& bytes, double timeout_s) const {
  if (bytes.size() > std::size_t(INT_MAX))
    throw RankFailure(to, false, fmt::format("a message of {} bytes for rank {} is over MPI's 2 GiB; use more ranks",
                                             bytes.size(), to));
  MPI_Request request;
  MPI_Isend(bytes.data(), int(bytes.size()), MPI_BYTE, to, tag, MPI_COMM_WORLD, &request);
  const auto start = Clock::now();
  for (int done = 0;;) {
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (done) return;
    if (deadline_passed(start, timeout_s))
      throw RankFailure(to, true,
                        fmt::format("rank {} on {} took no message within {:.0f} s (--rank-timeout): it hangs", to,
                                    host(to), timeout_s));
    nap();
  }
}

std::vector<std::uint8_t> Ranks::receive(int from, int tag, double timeout_s) const {
  const auto start = Clock::now();
  MPI_Status status;
  for (int arrived = 0;;) {
    MPI_Iprobe(from, tag, MPI_COMM_WORLD, &arrived, &status);
    if (arrived) break;
    if (deadline_passed(start, timeout_s))
      throw RankFailure(from, true,
                        fmt::format("rank {} on {} sent nothing within {:.0f} s (--rank-timeout): it hangs, or its "
                                    "share takes longer than that",
                                    from, host(from), timeout_s));
    nap();
  }
  int count = 0;
  MPI_Get_count(&status, MPI_BYTE, &count);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(count));
  MPI_Recv(bytes.data(), count, MPI_BYTE, from, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  return bytes;
}

void Ranks::abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  current_words.store(-1);  // this rank has said why; mpirun's SIGTERM that follows adds nothing
  if (mpi_) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

#else  // one process

bool built_with_mpi() { return false; }

// Started by mpirun all the same: the job's size and this rank are read from
// OpenMPI's environment, so main can say that this build cannot take part.
Ranks::Ranks(int*, char***) {
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
  if (size && rank) {
    size_ = std::max(1, std::atoi(size));
    rank_ = std::min(std::max(0, std::atoi(rank)), size_ - 1);
  }
  hosts_.assign(std::size_t(size_), "?");  // the others' are unknown: nothing is sent
  hosts_[std::size_t(rank_)] = this_host();
}
Ranks::~Ranks() = default;

void Ranks::send(int to, int, const std::vector<std::uint8_t>&, double) const {
  throw RankFailure(to, false, "this evolve was built without MPI: there are no other ranks");
}

std::vector<std::uint8_t> Ranks::receive(int from, int, double) const {
  throw RankFailure(from, false, "this evolve was built without MPI: there are no other ranks");
}

void Ranks::abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

#endif

}  // namespace evoplast::apps
