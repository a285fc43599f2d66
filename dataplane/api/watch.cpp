#include "api/watch.h"

#include <algorithm>
#include <cstdio>
#include <deque>

namespace medix::dp {

namespace v1 = medix::dataplane::v1;

// How a stream is driven. Only the ticker (and stop(), once the ticker is gone) starts
// anything on a stream: StartWrite, Finish, TryCancel, always outside the mutex (gRPC may run
// a reaction inline on the thread that starts an operation). gRPC's reactions (OnWriteDone,
// OnCancel, OnDone) only change state under the mutex. After Finish, gRPC may end the stream
// any time: the only thing still started on it is TryCancel, with `canceller` set, and OnDone
// waits for that to return. A done stream is deleted by the ticker where it holds none.
struct Watches::Watch {
  Watch(Watches& hub, grpc::CallbackServerContext* context, const char* method, std::string client)
      : hub(hub), context(context), method(method), client(std::move(client)), counters(method[5] == 'C') {}
  virtual ~Watch() = default;
  virtual void start_write() = 0;
  virtual void finish(const grpc::Status& status) = 0;
  // gRPC's reactions, for both kinds.
  void written(bool ok) { hub.write_done(this, ok); }
  void cancel() { hub.cancelled(this); }
  void over() { hub.done(this); }

  Watches& hub;
  grpc::CallbackServerContext* const context;
  const char* const method;
  const std::string client;
  const bool counters;  // WatchCounters, else WatchSaEvents
  // Under hub.mutex_:
  bool writing = false;  // a message is in flight
  bool gone = false;     // the client cancelled, or a write failed
  bool ended = false;    // Finish was called
  bool cancel_sent = false;
  std::thread::id canceller{};
  Clock::time_point writing_since{}, ended_at{};
  // WatchCounters:
  std::chrono::milliseconds interval{0};
  Clock::time_point next{};
  // WatchSaEvents: what happened from `cursor` (an event count) on, not yet written.
  uint64_t cursor = 0;
  std::deque<SaEvent> queue;
};

namespace {

constexpr size_t max_queued_events = 4096;

template <typename M>
struct Stream final : grpc::ServerWriteReactor<M>, Watches::Watch {
  using Watch::Watch;
  void start_write() override { this->StartWrite(&message); }
  void finish(const grpc::Status& status) override { this->Finish(status); }
  void OnWriteDone(bool ok) override { written(ok); }
  void OnCancel() override { cancel(); }
  void OnDone() override { over(); }
  M message;
};

}  // namespace

Watches::Watches(Controller& controller, std::function<void(v1::CountersSnapshot&)> snapshot, WatchLimits limits)
    : controller_(controller), snapshot_(std::move(snapshot)), limits_(limits) {
  ticker_ = std::thread([this] { run(); });
}

Watches::~Watches() {
  stop();
  wait_done(std::chrono::seconds(5));
}

std::optional<grpc::Status> Watches::admit(const char* method, const std::string& client) {
  if (stopping_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "medix-dp is stopping");
  if (watches_.size() >= limits_.max_streams)
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        std::string(method) + ": " + std::to_string(watches_.size()) +
                            " streams are open, the most medix-dp serves at once (--api-max-streams " +
                            std::to_string(limits_.max_streams) + ")");
  auto it = per_client_.find(client);
  if (it != per_client_.end() && it->second >= limits_.max_per_client)
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        std::string(method) + ": " + client + " has " + std::to_string(it->second) +
                            " streams open, the most one client may (--api-max-streams-per-client " +
                            std::to_string(limits_.max_per_client) + ")");
  return std::nullopt;
}

grpc::ServerWriteReactor<v1::CountersSnapshot>* Watches::counters(grpc::CallbackServerContext* context,
                                                                  const std::string& client, uint32_t interval_ms) {
  auto* w = new Stream<v1::CountersSnapshot>(*this, context, "WatchCounters", client);
  w->interval = std::chrono::milliseconds(interval_ms ? std::max(100u, interval_ms) : 1000);
  std::lock_guard lock(mutex_);
  if (auto refused = admit(w->method, client)) {
    delete w;  // never given to gRPC
    return new RefusedStream<v1::CountersSnapshot>(*refused);
  }
  w->next = Clock::now();  // the first snapshot at once
  watches_.push_back(w);
  per_client_[client]++;
  changed_.notify_all();
  return w;
}

grpc::ServerWriteReactor<v1::SaEvent>* Watches::sa_events(grpc::CallbackServerContext* context,
                                                          const std::string& client) {
  auto* w = new Stream<v1::SaEvent>(*this, context, "WatchSaEvents", client);
  w->cursor = controller_.sa_event_log().count();  // only what happens from now on
  std::lock_guard lock(mutex_);
  if (auto refused = admit(w->method, client)) {
    delete w;
    return new RefusedStream<v1::SaEvent>(*refused);
  }
  watches_.push_back(w);
  per_client_[client]++;
  changed_.notify_all();
  return w;
}

void Watches::write_done(Watch* w, bool ok) {
  std::lock_guard lock(mutex_);
  w->writing = false;
  if (!ok) w->gone = true;
  changed_.notify_all();
}

void Watches::cancelled(Watch* w) {
  std::lock_guard lock(mutex_);
  w->gone = true;
  changed_.notify_all();
}

void Watches::done(Watch* w) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return w->canceller == std::thread::id() || w->canceller == std::this_thread::get_id(); });
  watches_.remove(w);
  if (auto it = per_client_.find(w->client); it != per_client_.end() && --it->second == 0) per_client_.erase(it);
  dead_.push_back(w);
  changed_.notify_all();
}

void Watches::bury() {
  for (Watch* w : dead_) delete w;
  dead_.clear();
}

namespace {

struct Action {
  enum Kind { write, finish, cancel_then_finish, cancel } kind;
  Watches::Watch* watch;
  grpc::Status status = grpc::Status::OK;
};

// Runs what was decided under the mutex; `mutex` is not held.
void perform(std::vector<Action>& actions, const v1::CountersSnapshot* snapshot, std::mutex& mutex,
             std::condition_variable& changed) {
  for (auto& a : actions) {
    Watches::Watch* w = a.watch;
    switch (a.kind) {
      case Action::write:
        if (auto* c = dynamic_cast<Stream<v1::CountersSnapshot>*>(w)) c->message = *snapshot;
        w->start_write();
        break;
      case Action::cancel_then_finish:
        w->context->TryCancel();  // before Finish: the stream cannot be done yet
        w->finish(a.status);
        break;
      case Action::finish: w->finish(a.status); break;
      case Action::cancel: {
        w->context->TryCancel();
        std::lock_guard lock(mutex);
        w->canceller = std::thread::id();
        changed.notify_all();
        break;
      }
    }
  }
  actions.clear();
}

}  // namespace

void Watches::run() {
  const auto stall = std::chrono::milliseconds(limits_.stall_ms);
  uint64_t sa_cursor = UINT64_MAX;  // events read up to here
  std::vector<Action> actions;
  std::vector<SaEvent> events;
  v1::CountersSnapshot snapshot;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    bury();
    // SA events since the oldest stream's cursor, read outside our mutex: an Apply may hold
    // the controller's for a while.
    uint64_t oldest = UINT64_MAX;
    for (const Watch* w : watches_)
      if (!w->counters) oldest = std::min(oldest, w->cursor);
    events.clear();
    if (oldest != UINT64_MAX) {
      sa_cursor = std::min(sa_cursor, oldest);
      lock.unlock();
      events = controller_.sa_event_log().wait(sa_cursor, std::chrono::milliseconds(0));
      lock.lock();
      if (stopping_) break;
    }
    const uint64_t first_event = sa_cursor - events.size();
    auto now = Clock::now();
    bool snapshot_needed = false;
    for (Watch* w : watches_) {
      bool counters = w->counters;
      if (w->ended) {  // Finish was called: a client that still takes nothing is cut off
        if (!w->cancel_sent && now - w->ended_at >= stall) {
          w->cancel_sent = true;
          w->canceller = std::this_thread::get_id();
          actions.push_back({Action::cancel, w});
        }
        continue;
      }
      if (w->gone) {
        w->ended = true, w->ended_at = now;
        actions.push_back({Action::finish, w, grpc::Status::CANCELLED});
        continue;
      }
      if (!counters && !events.empty()) {
        for (uint64_t i = std::max(w->cursor, first_event); i < sa_cursor; i++)
          w->queue.push_back(events[i - first_event]);
        w->cursor = std::max(w->cursor, sa_cursor);
      }
      if (w->writing && now - w->writing_since >= stall) {
        // The client has taken nothing for `stall`: end the stream with the reason (a client
        // that reads late still gets it, after what was in flight), cut it off a stall later.
        std::string why = std::string(w->method) + ": ended: the client took no message for " +
                          std::to_string(limits_.stall_ms) + " ms (--api-stall-timeout); a stream must be read";
        fprintf(stderr, "medix-dp: API: %s (%s)\n", why.c_str(), w->client.c_str());
        w->ended = true, w->ended_at = now;
        actions.push_back({Action::finish, w, grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, why)});
        continue;
      }
      if (!counters && w->queue.size() > max_queued_events) {
        w->ended = true, w->ended_at = now;
        actions.push_back({w->writing ? Action::cancel_then_finish : Action::finish, w,
                           grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                        std::string(w->method) + ": ended: the client fell more than " +
                                            std::to_string(max_queued_events) + " events behind")});
        continue;
      }
      if (counters && now >= w->next) {
        // Counters only grow: a snapshot due while the last is still in flight is skipped.
        // On time, the next keeps the cadence (no drift); late by over half an interval (a busy
        // machine), the cadence starts again from now, so no two snapshots come closer than that.
        w->next = now - w->next > w->interval / 2 ? now + w->interval : w->next + w->interval;
        if (w->writing) continue;
        snapshot_needed = true;
      } else if (counters || w->writing || w->queue.empty()) {
        continue;
      } else {
        fill(static_cast<Stream<v1::SaEvent>*>(w)->message, w->queue.front());
        w->queue.pop_front();
      }
      w->writing = true, w->writing_since = now;
      actions.push_back({Action::write, w});
    }
    lock.unlock();
    if (snapshot_needed) {
      snapshot.Clear();
      snapshot_(snapshot);  // one snapshot for every stream due now
    }
    perform(actions, &snapshot, mutex_, changed_);
    lock.lock();
    if (stopping_) break;
    if (watches_.empty() && dead_.empty())
      changed_.wait(lock);  // until a stream is admitted, or stop()
    else
      changed_.wait_for(lock, std::chrono::milliseconds(20));
  }
}

void Watches::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    changed_.notify_all();
  }
  if (ticker_.joinable()) ticker_.join();
  // The ticker is gone: this thread is the only one to start anything on a stream now.
  std::vector<Action> actions;
  {
    std::lock_guard lock(mutex_);
    for (Watch* w : watches_) {
      if (w->ended) {
        if (!w->cancel_sent) {
          w->cancel_sent = true;
          w->canceller = std::this_thread::get_id();
          actions.push_back({Action::cancel, w});
        }
        continue;
      }
      w->ended = true;
      // A message in flight to a client that does not read would hold the status back.
      actions.push_back({w->writing ? Action::cancel_then_finish : Action::finish, w,
                         grpc::Status(grpc::StatusCode::UNAVAILABLE, "medix-dp is stopping")});
    }
  }
  perform(actions, nullptr, mutex_, changed_);
}

void Watches::wait_done(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return watches_.empty(); });
  bury();
  // A stream gRPC has not let go of is left, not freed under it.
  if (!watches_.empty()) fprintf(stderr, "medix-dp: API: %zu streams did not end\n", watches_.size());
}

}  // namespace medix::dp
