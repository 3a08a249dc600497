// Worker threads and cooperative cancellation for the long loops of the core (fit_batch, the
// stability grid and threshold searches). Pure C++17.
// Every item is computed by exactly one worker from its own inputs, so results never depend on
// the thread count, nor on which thread runs a worker; the callers decide how items map to workers.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace grpo_dynamics {

// Cooperative cancellation (Ctrl-C). Long loops call check() at coarse intervals (per series,
// per grid point, per candidate of a search) and stop early once it returns true; the caller
// then discards the partial result. The poll function (e.g. the binding's PyErr_CheckSignals
// with the GIL re-acquired) runs only on the thread that created the Cancel, at most once per
// `interval`; any other thread only reads the flag.
class Cancel {
 public:
  using Poll = std::function<bool()>;
  explicit Cancel(Poll poll = {}, std::chrono::milliseconds interval = std::chrono::milliseconds(50))
      : poll_(std::move(poll)), interval_(interval), owner_(std::this_thread::get_id()),
        last_(std::chrono::steady_clock::now()) {}

  bool requested() const noexcept { return flag_.load(std::memory_order_relaxed); }
  void request() noexcept { flag_.store(true, std::memory_order_relaxed); }

  // True once cancellation was requested. On the owning thread, polls when `interval` has passed.
  bool check() {
    if (requested()) return true;
    if (!poll_ || std::this_thread::get_id() != owner_) return false;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < interval_) return false;
    last_ = now;
    if (poll_()) request();
    return requested();
  }

 private:
  Poll poll_;
  std::chrono::milliseconds interval_;
  std::thread::id owner_;
  std::chrono::steady_clock::time_point last_;
  std::atomic<bool> flag_{false};
};

// check() on an optional Cancel.
inline bool cancelled(Cancel* cancel) { return cancel != nullptr && cancel->check(); }

// Workers to start: `requested` (<= 0: the hardware concurrency), at most `max_useful`, at least 1.
inline std::size_t resolve_threads(int requested, std::size_t max_useful) {
  const std::size_t wanted = requested > 0 ? static_cast<std::size_t>(requested)
                                           : std::max(1u, std::thread::hardware_concurrency());
  return std::max<std::size_t>(1, std::min(wanted, max_useful));
}

// Calls work(worker) exactly once for worker = 0 .. n_workers - 1. Worker 0 runs on the calling
// thread, the others on their own std::thread. If a thread cannot be started (std::system_error
// when a container limits threads or address space), the workers left over run on the calling
// thread instead: fewer threads, same results. While waiting for the other threads, the calling
// thread keeps polling `cancel`. An exception from `work` is rethrown on the calling thread once
// every thread has been joined (the first one, if several throw).
template <class Work>
void run_workers(std::size_t n_workers, const Work& work, Cancel* cancel = nullptr) {
  if (n_workers <= 1) {
    if (n_workers == 1) work(std::size_t{0});
    return;
  }
  std::mutex mutex;
  std::condition_variable done;
  std::size_t running = 0;
  std::exception_ptr error;
  const auto record = [&](std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!error) error = e;
  };
  const auto run = [&](std::size_t worker) {
    try {
      work(worker);
    } catch (...) {
      record(std::current_exception());
      if (cancel) cancel->request();  // the result is lost anyway: stop the others early
    }
  };
  std::vector<std::thread> pool;
  std::size_t started = 1;  // workers 1 .. started - 1 got a thread
  try {
    pool.reserve(n_workers - 1);
    for (; started < n_workers; ++started) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        ++running;
      }
      try {
        pool.emplace_back([&, started] {
          run(started);
          std::lock_guard<std::mutex> lock(mutex);
          --running;
          done.notify_all();
        });
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        --running;
        throw;
      }
    }
  } catch (const std::exception&) {
    // std::system_error (no thread) or std::bad_alloc (no room for one): degrade, never terminate.
  }
  run(0);
  for (std::size_t worker = started; worker < n_workers; ++worker) run(worker);
  if (cancel) {
    std::unique_lock<std::mutex> lock(mutex);
    while (running > 0) {
      done.wait_for(lock, std::chrono::milliseconds(20));
      lock.unlock();
      cancel->check();
      lock.lock();
    }
  }
  for (std::thread& thread : pool) thread.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace grpo_dynamics
