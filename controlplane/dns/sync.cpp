#include "sync.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "intent_file.h"

namespace medix::cp::dns {

namespace {

constexpr auto interval = std::chrono::milliseconds(500);

// A member's label in the catalog: fixed per zone name (FNV-1a), so a zone keeps its entry.
std::string member_label(const std::string& zone) {
  uint64_t h = 1469598103934665603ull;
  for (char c : zone) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  char out[17];
  snprintf(out, sizeof(out), "%016llx", static_cast<unsigned long long>(h));
  return out;
}

// The catalog zone (RFC 9432, version 2) listing `zones`.
Zone catalog_of(const std::string& catalog, const Zones& zones) {
  Zone c;
  c.insert({catalog, 0, "SOA", "invalid. invalid. 3600 600 2147483646 0"});
  c.insert({catalog, 0, "NS", "invalid."});
  c.insert({"version." + catalog, 0, "TXT", "\"2\""});
  for (const auto& [name, zone] : zones) c.insert({member_label(name) + ".zones." + catalog, 0, "PTR", name});
  return c;
}

}  // namespace

Sync::Sync(const std::string& socket, const std::string& catalog, const std::string& geoip)
    : knot_(socket), catalog_(absolute_name(catalog)), geoip_(geoip) {}

std::string Sync::bring_views() {
  const std::string text = geoip_text(views_);
  std::ifstream in(geoip_);
  std::stringstream current;
  current << in.rdbuf();
  if (current.str() != text) {
    if (std::string e = write_atomically(geoip_, text, 0644); !e.empty()) return "the views file: " + e;
    views_loaded_ = false;
  } else if (!loaded_once_) {
    // As medix-cp left it: knotd read it when it started, or at medix-cp's last reload.
    views_loaded_ = true;
  }
  loaded_once_ = true;
  if (views_loaded_) return "";
  if (std::string e = knot_.reload(); !e.empty()) return "reloading knotd for the views: " + e;
  views_loaded_ = true;
  transactions_++;
  return "";
}

std::string Sync::bring(const std::string& name, const Zone& want, bool& pending) {
  std::string error;
  auto have = knot_.read(name, error);
  if (!error.empty()) return "reading " + name + ": " + error;
  if (!have) {
    pending = true;
    return "Knot has no zone " + name + " yet";
  }
  Zone remove, add;
  for (const auto& r : *have)
    if (!want.count(r)) remove.insert(r);
  for (const auto& r : want)
    if (!have->count(r)) add.insert(r);
  if (remove.empty() && add.empty()) return "";
  if (std::string e = knot_.update(name, remove, add); !e.empty()) return e;
  transactions_++;
  return "";
}

std::string Sync::reconcile(bool& pending) {
  pending = false;
  if (!configured_) return "";
  if (std::string e = bring(catalog_, catalog_of(catalog_, want_), pending); !e.empty())
    return pending ? "the catalog zone " + catalog_ + " is not in Knot's configuration (docs/dns.md)" : e;
  std::string first;
  for (const auto& [name, zone] : want_)
    if (std::string e = bring(name, zone, pending); !e.empty() && first.empty()) first = e;
  if (!geoip_.empty())
    if (std::string e = bring_views(); !e.empty() && first.empty()) first = e;
  return first;
}

std::string Sync::apply(const c1::Intent& intent) {
  std::lock_guard lock(mu_);
  want_ = zones_of(intent);
  views_ = views_of(intent);
  if (probe_) probe_->set_owners(intent);
  configured_ = true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  bool pending = false;
  std::string error = reconcile(pending);
  // Zones just added to the catalog: Knot creates them at once, but after the commit.
  while (pending && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    error = reconcile(pending);
  }
  last_error_ = error;
  in_sync_ = error.empty();
  return error;
}

void Sync::start() {
  thread_ = std::thread([this] {
    std::unique_lock stop_lock(stop_mu_);
    while (!stop_cv_.wait_for(stop_lock, interval, [this] { return stopping_; })) {
      std::lock_guard lock(mu_);
      bool pending = false;
      std::string error = reconcile(pending);
      if (error != last_error_)
        fprintf(stderr, "medix-cp: dns: %s\n", error.empty() ? "Knot's zones equal the intent again" : error.c_str());
      last_error_ = error;
      in_sync_ = error.empty();
    }
  });
}

void Sync::stop() {
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace medix::cp::dns
