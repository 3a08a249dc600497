// Worker threads for the bulk loops of the core (fit_batch, stability grid). Pure C++17.
// Every item is computed by exactly one worker from its own inputs, so results never depend on
// the thread count; the callers decide how items map to workers.
#pragma once

#include <algorithm>
#include <cstddef>
#include <thread>
#include <vector>

namespace grpo_dynamics {

// Workers to start: `requested` (<= 0: the hardware concurrency), at most `max_useful`, at least 1.
inline std::size_t resolve_threads(int requested, std::size_t max_useful) {
  const std::size_t wanted = requested > 0 ? static_cast<std::size_t>(requested)
                                           : std::max(1u, std::thread::hardware_concurrency());
  return std::max<std::size_t>(1, std::min(wanted, max_useful));
}

// Calls work(worker) for worker = 0 .. n_workers - 1, each on its own std::thread, or inline when
// there is one worker. `work` must not throw (an exception leaving a thread ends the process).
template <class Work>
void run_workers(std::size_t n_workers, const Work& work) {
  if (n_workers <= 1) {
    work(std::size_t{0});
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(n_workers);
  for (std::size_t worker = 0; worker < n_workers; ++worker) pool.emplace_back(work, worker);
  for (std::thread& thread : pool) thread.join();
}

}  // namespace grpo_dynamics
