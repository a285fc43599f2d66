// The IKE witness's records never go down (docs/ha.md, "A record never goes down"): medix-cp's
// Witness (controlplane/ha/witness.*) against a real etcd (test/cp/witness.sh starts it). A record
// Txn whose call gets no answer is held back by the Witness's test hook and given to etcd by this
// tool late, as TCP would deliver it on a connection given up at a reconnect: after a later record
// it is refused (and, the control, the same Txn with the old guard alone, the speaker key, lowers
// the record); taken before the next record, that record reads it and raises to it; taken with
// its answer lost, the next write finds it there. A node without the lease writes its answers'
// responding IDs, only ever up, and the holder reads them. Prints PASS/FAIL lines; exits 1 on a failure.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>

#include "ha/witness.h"
#include "intent_store.h"

namespace pb = etcdserverpb;
using medix::cp::ha::IkeMids;

namespace {

int passed = 0, failed = 0;

void check(bool ok, const std::string& what, const std::string& detail = "") {
  if (ok) {
    printf("PASS %s\n", what.c_str());
    passed++;
  } else {
    printf("FAIL %s%s%s\n", what.c_str(), detail.empty() ? "" : ": ", detail.c_str());
    failed++;
  }
}

struct Etcd {
  std::unique_ptr<pb::KV::Stub> kv;
  std::string records;  // PREFIX/ike-mids/, speaker: PREFIX/ike-speaker
  std::string speaker;

  // The record of `m`'s IKE_SA at etcd, "INITIATING RESPONDING" ("absent", "no answer").
  std::string stored(const IkeMids& m) {
    pb::RangeRequest request;
    request.set_key(records + medix::cp::ha::mids_record_name(m));
    pb::RangeResponse response;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    if (!kv->Range(&ctx, request, &response).ok()) return "no answer";
    if (response.kvs_size() == 0) return "absent";
    IkeMids read{};
    if (!medix::cp::ha::parse_mids_record(medix::cp::ha::mids_record_name(m), response.kvs(0).value(), read))
      return "unparsable";
    return std::to_string(read.initiating) + " " + std::to_string(read.responding);
  }
  // A key's value at etcd ("absent", "no answer").
  std::string value(const std::string& key) {
    pb::RangeRequest request;
    request.set_key(key);
    pb::RangeResponse response;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    if (!kv->Range(&ctx, request, &response).ok()) return "no answer";
    return response.kvs_size() ? response.kvs(0).value() : "absent";
  }
  // The Txn given to etcd as sent: whether etcd took it ("no answer" aside).
  std::string send(const pb::TxnRequest& txn) {
    pb::TxnResponse response;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    if (!kv->Txn(&ctx, txn, &response).ok()) return "no answer";
    return response.succeeded() ? "taken" : "refused";
  }
  // The Txn as medix-cp sent it before 2026-12-07: its compares but the speaker key's left out.
  pb::TxnRequest old_guard(const pb::TxnRequest& txn) {
    pb::TxnRequest old = txn;
    old.clear_compare();
    for (const auto& c : txn.compare())
      if (c.key() == speaker) *old.add_compare() = c;
    return old;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: witness-records etcd://HOST:PORT/PREFIX\n");
    return 2;
  }
  medix::cp::EtcdEndpoint endpoint;
  if (auto e = medix::cp::parse_etcd_url(argv[1], endpoint)) {
    fprintf(stderr, "witness-records: %s\n", e->c_str());
    return 2;
  }
  Etcd etcd{pb::KV::NewStub(medix::cp::etcd_channel(endpoint, {})), endpoint.prefix + "/ike-mids/",
            endpoint.prefix + "/ike-speaker"};

  medix::cp::ha::Witness witness;
  medix::cp::ha::WitnessConfig config;
  config.url = argv[1];
  config.ttl_s = 10;  // a renew deadline of 5 s: the records' checks, not the lease's timing, on a loaded machine
  check(witness.start(config, "node-a").empty(), "the witness starts");
  witness.want(true);
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!witness.holds() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  check(witness.holds(), "the lease obtained");
  witness.take_records();

  // The hook: the next record Txn is held (its call "got no answer"); with `apply`, given to etcd
  // at once all the same (taken, the answer lost).
  bool hold = false, apply = false;
  std::optional<pb::TxnRequest> held;
  witness.before_record = [&](const pb::TxnRequest& txn) {
    if (!hold) return true;
    hold = false;
    held = txn;
    if (apply) etcd.send(txn);
    return false;
  };
  auto mids = [](uint64_t n, uint32_t i, uint32_t r) { return IkeMids{n, n + 1, i, r}; };
  // record(m): whether the Witness says recorded, and etcd has `want` after it.
  auto record = [&](const IkeMids& m, bool said, const std::string& want, const std::string& what) {
    bool ok = witness.record(m, {}) == said;
    std::string has = etcd.stored(m);
    check(ok && has == want, what, std::string(ok ? "" : "the witness said otherwise, ") + "etcd has " + has);
  };
  auto late = [&](const pb::TxnRequest& txn, const std::string& want_said, const IkeMids& m, const std::string& want,
                  const std::string& what) {
    std::string said = etcd.send(txn);
    std::string has = etcd.stored(m);
    check(said == want_said && has == want, what, said + ", etcd has " + has);
  };

  // A late Txn after a later record (the case of issue 15: once it lowered the record).
  record(mids(0x1000, 10, 0), true, "10 0", "late: request 10 recorded");
  hold = true;
  record(mids(0x1000, 11, 0), false, "10 0", "late: the record of request 11 got no answer (held), etcd has 10");
  record(mids(0x1000, 16, 0), true, "16 0", "late: request 16 recorded");
  check(held.has_value(), "late: 11's Txn held");
  if (held) {
    late(*held, "refused", mids(0x1000, 0, 0), "16 0", "late: 11's Txn taken after 16's is refused, etcd has 16");
    // Control: the old guard (the speaker key alone) holds for every Txn of the lease in force.
    late(etcd.old_guard(*held), "taken", mids(0x1000, 0, 0), "11 0",
         "late (control): the same Txn with the old guard alone is taken and lowers the record to 11");
  }
  record(mids(0x1000, 17, 0), true, "17 0", "late: request 17 recorded over a record changed behind the node");

  // A Txn taken late but before the next record: that one finds the record changed, reads it, and
  // writes the greater of each ID.
  record(mids(0x2000, 5, 3), true, "5 3", "early: 5 3 recorded");
  hold = true;
  held.reset();
  record(mids(0x2000, 7, 4), false, "5 3", "early: the record of 7 4 got no answer (held)");
  check(held.has_value(), "early: 7 4's Txn held");
  if (held) late(*held, "taken", mids(0x2000, 0, 0), "7 4", "early: taken late (nothing written since), etcd has 7 4");
  record(mids(0x2000, 8, 3), true, "8 4", "early: 8 3 recorded as 8 4 (the responding ID not lowered)");

  // Taken, its answer lost: the same record again is found there, not written twice.
  hold = apply = true;
  record(mids(0x3000, 3, 1), false, "3 1", "lost answer: no answer, etcd has 3 1");
  uint64_t writes = witness.stats().recorded;
  record(mids(0x3000, 3, 1), true, "3 1", "lost answer: recorded again: found at etcd");
  check(witness.stats().recorded == writes, "lost answer: not written twice");
  record(mids(0x3000, 4, 1), true, "4 1", "lost answer: then 4 1 recorded");

  // Several records in one Txn (record_all, a node that just obtained the lease), one of them
  // changed behind the node: read, raised to, and all written.
  record(mids(0x4000, 2, 0), true, "2 0", "several: the first IKE_SA's 2 0 recorded");
  hold = true;
  apply = false;
  held.reset();
  record(mids(0x4000, 3, 1), false, "2 0", "several: the record of its 3 1 got no answer (held)");
  if (held) late(*held, "taken", mids(0x4000, 0, 0), "3 1", "several: taken late, etcd has 3 1");
  bool all = witness.record_all({mids(0x4000, 4, 0), mids(0x5000, 6, 2)});
  std::string first = etcd.stored(mids(0x4000, 0, 0)), second = etcd.stored(mids(0x5000, 0, 0));
  check(all && first == "4 1" && second == "6 2", "several: 4 0 and 6 2 recorded in one Txn as 4 1 and 6 2",
        first + ", " + second);

  // An answer without the lease (docs/ha.md, "An answer without the lease"): node-b, refused the
  // lease (node-a holds it) but reaching etcd, writes its responding IDs under its own key, only
  // ever up, each with its response's packet beside it (binary; kept only with its ID); node-a,
  // the holder, reads them with its renewals, each once, with the response written with that ID.
  medix::cp::ha::Witness b;
  check(b.start(config, "node-b").empty(), "answered: node-b's witness starts");
  b.want(true);  // refused (held by node-a): its grants keep it in touch with etcd
  std::string answer_key =
      endpoint.prefix + "/ike-answered/node-b/" + medix::cp::ha::mids_record_name(mids(0x6000, 0, 0));
  const std::string response_key = answer_key + "/response", packet5("\x2e\x20\x25\x00packet 5", 12);
  bool wrote = false;
  until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!(wrote = b.answered(mids(0x6000, 0, 5), packet5)) && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  check(wrote && !b.holds() && etcd.value(answer_key) == "00000005" && etcd.value(response_key) == "00000005" + packet5,
        "answered: node-b, without the lease, writes its responding ID 5 and its response's 12 bytes",
        etcd.value(answer_key));
  // take(want): what node-a takes within 3 s (its renewals read every 250 ms), "r1 r2 ..." for
  // 0x6000, each with "+" if its response came and is `response`, "-" if none came.
  auto take = [&](size_t want, const std::string& response = {}) {
    std::string got;
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    for (size_t n = 0; std::chrono::steady_clock::now() < end && n < want;) {
      for (const auto& a : witness.take_answered()) {
        got += (got.empty() ? "" : " ") + std::to_string(a.mids.spi_i == 0x6000 ? a.mids.responding : 0) +
               (a.response.empty()       ? "-"
                : a.response == response ? "+"
                                         : "?");
        n++;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return got;
  };
  std::string got = take(1, packet5);
  check(got == "5+", "answered: the holder reads node-b's 5 with its response", got);
  {
    medix::cp::ha::Witness late_b;  // node-b's write of an older answer, taken late
    late_b.start(config, "node-b");
    late_b.want(true);
    until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    bool said = false;
    while (!(said = late_b.answered(mids(0x6000, 0, 3), "packet 3")) && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    check(said && etcd.value(answer_key) == "00000005" && etcd.value(response_key) == "00000005" + packet5,
          "answered: an older write (3) is refused: etcd keeps 5 and its response", etcd.value(answer_key));
  }
  // A response over max_response_bytes is not kept: 7 is read without one (5's is not 7's).
  const std::string big(medix::cp::ha::Witness::max_response_bytes + 1, 'x');
  check(b.answered(mids(0x6000, 0, 7), big) && etcd.value(answer_key) == "00000007" &&
            etcd.value(response_key) == "00000005" + packet5,
        "answered: node-b's 7 written, its response over the bound not kept", etcd.value(answer_key));
  got = take(2);
  check(got == "7-", "answered: the holder reads 7, once (not 5 again), without 5's response", got);

  // A request's bytes (docs/ha.md, item 6, "An exchange in flight when the lease changes hands"):
  // written with its record; the next holder reads those of each IKE_SA's last request only (its
  // message ID, at byte 20 of the IKE header, one below the record's initiating ID), deleted.
  auto request = [](uint32_t mid) {
    std::string bytes(40, '\x5a');
    for (int i = 0; i < 4; i++) bytes[size_t(20 + i)] = char(mid >> (24 - 8 * i));
    return bytes;
  };
  witness.before_record = nullptr;
  std::string request_key = endpoint.prefix + "/ike-requests/" + medix::cp::ha::mids_record_name(mids(0x7000, 0, 0));
  check(witness.record(mids(0x7000, 5, 0), {}, request(4)) && etcd.value(request_key) == request(4),
        "requests: request 4 recorded with its bytes");
  check(witness.record(mids(0x8000, 8, 0), {}, request(7)) && witness.record(mids(0x8000, 9, 2), {}),
        "requests: request 7 recorded with its bytes, then 9 2 without (7 is not its last request then)");
  witness.stop();  // lets the key go: node-b obtains it
  until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!b.holds() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto read = b.take_records();
  size_t n_read = read ? read->requests.size() : 0;
  check(b.holds() && n_read == 1 && read->requests[0].spi_i == 0x7000 && read->requests[0].bytes == request(4),
        "requests: the next holder reads request 4's bytes, not request 7's", std::to_string(n_read) + " read");
  check(etcd.value(request_key) == "absent", "requests: deleted with the lease obtained", etcd.value(request_key));
  b.stop();
  printf("witness-records: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
