// The IKE speaker's witness (docs/ha.md, "The witness"): a node of a pair that hears no standby
// peer may send IKE requests of its own (DPD, rekeys) only while it holds an etcd lease on one
// key, PREFIX/ike-speaker. Of two nodes that cannot hear each other at most one holds it (etcd's
// quorum decides), and a node left alone (its peer dead) gets it and speaks.
//
// Holding: a lease of `ttl` seconds (etcd may raise it to its minimum, 2 s for etcd 3.4's default
// timings), the key created with it in one Txn (only if absent), kept alive every 250 ms. The node
// counts the lease as held until half the TTL after the send time of its last renewal that etcd
// answered: the lease cannot expire at etcd before a full TTL after that, so a node cut from etcd
// goes silent at least ttl/2 before the other node can obtain the key (the renew deadline below
// the TTL, as in leader election).
//
// The message IDs behind the lease (docs/ha.md, "A lease that changes hands"): while a node speaks
// by the lease it records, before each IKE message of ours goes out, the IKE_SA's message IDs
// under PREFIX/ike-mids/SPI_I.SPI_R ("INITIATING RESPONDING"; SPIs and IDs only, no key), in a Txn
// that succeeds only while the speaker's key is held with its lease. A node that obtains the lease
// reads them (and deletes them) in the Txn that creates the key, and raises its IKE_SAs to them
// before it speaks: the gateway then expects what the new speaker sends. Each record carries the
// inbound ESP SPIs of the IKE_SA's CHILD_SAs too (no key): the new speaker deletes at the gateway
// those it does not hold (a CHILD_SA the last holder made or rekeyed: docs/ha.md, "A CHILD_SA the
// previous speaker changed").
//
// A request's record carries its bytes too (PREFIX/ike-requests/SPI_I.SPI_R, the IKE message as
// charon encoded it: encrypted, no key), in the same Txn: the next speaker sends the last one
// again as it is, so that the gateway, whether it had it or not, answers it and expects the ID
// the new speaker raises to (docs/ha.md, "An exchange in flight when the lease changes hands").
//
// A record only ever goes up at etcd (docs/ha.md, "A record never goes down"): its Txn also
// compares the record key's own mod revision with the one this node last wrote or read (0:
// absent), so a Txn that etcd takes late (its call gave up, its connection too) is refused once
// the record changed after it was sent; a refused write reads the record, raises to it, tries again.
//
// An answer without the lease (docs/ha.md, "An answer without the lease"): a node active in a
// split without the lease still answers the gateway's requests that reach it. Before such a
// response goes out it writes the IKE_SA's responding ID under PREFIX/ike-answered/NAME/SPI_I.SPI_R
// (8 hex digits; no key), unguarded by the lease and only ever up (put only over a lower value).
// The holder reads the other node's with each renewal and raises its responding ID to them, so
// the gateway's next request, if the switch feeds the holder, is not ignored. With the record, in
// the same Txn, the response's packet as sent (PREFIX/ike-answered/NAME/SPI_I.SPI_R/response: the
// responding ID's 8 hex digits, then the encrypted IKE message; at most max_response_bytes, one
// packet): the holder sends it again for the gateway's retransmit of that request if the
// response was lost (docs/ha.md, "An answer without the lease").
#ifndef MEDIX_CP_HA_WITNESS_H
#define MEDIX_CP_HA_WITNESS_H

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "etcd/etcd.grpc.pb.h"
#include "etcd/token.h"
#include "intent_store.h"
#include "wire.h"

namespace medix::cp::ha {

struct WitnessConfig {
  std::string url;  // etcd://HOST:PORT[,HOST:PORT...][/PREFIX]; "": no witness
  int ttl_s = 2;    // the lease's TTL asked of etcd
  // TLS and etcd's user, as the intent store's (--etcd-*): its address and prefix are not used.
  EtcdEndpoint access;
  bool configured() const { return !url.empty(); }
};

class Witness {
 public:
  ~Witness() { stop(); }
  // `name` is what the key holds while this node has it (its sync-link address). "" or the error.
  std::string start(const WitnessConfig& config, const std::string& name);
  void stop();
  // Whether this node needs the lease (active without a standby peer): obtained and kept while
  // wanted, revoked at once when not.
  void want(bool wanted);
  // Held, and its renew deadline not passed.
  bool holds() const;
  // The records read when the lease was last obtained (once per obtain; nullopt: none new).
  // The last request an IKE_SA's holder recorded, its bytes as charon encoded them (no key: the
  // message is encrypted), read with the lease: sent again as they are before the new speaker
  // speaks (docs/ha.md, item 6, "An exchange in flight when the lease changes hands").
  struct Request {
    uint64_t spi_i, spi_r;
    std::string bytes;
  };
  struct Records {
    std::vector<IkeMids> mids;
    std::vector<IkeChild> children;  // the last holder's CHILD_SAs, by their IKE_SA
    std::vector<Request> requests;   // each the last one its IKE_SA's record counts
  };
  std::optional<Records> take_records();
  // Records an IKE_SA's message IDs (raised to at least what this node recorded or read before)
  // and its CHILD_SAs' inbound SPIs while the lease is held: true once etcd has them (or already
  // had), false if not held or etcd refused or did not answer. record_all: all at once (a node
  // that just obtained it), each with the CHILD_SAs recorded or read before for its IKE_SA.
  // `request`: a request's bytes (none for a response), written with its record under
  // PREFIX/ike-requests/SPI_I.SPI_R in the same Txn.
  bool record(const IkeMids& m, const std::vector<uint32_t>& children, std::string_view request = {});
  bool record_all(const std::vector<IkeMids>& mids);
  // Whether `m`'s initiating ID is no higher than what this node recorded for that IKE_SA (a
  // retransmit of a recorded request).
  bool recorded(const IkeMids& m);
  // Before a response of a node that is active in a split without the lease: the IKE_SA's
  // responding ID written for the holder (unguarded, only ever up), with `response` (the packet as
  // it goes out; "": none, or over max_response_bytes: not kept). false: not written (etcd not
  // heard from in the last second, or it did not answer); the response goes out whatever.
  static constexpr size_t max_response_bytes = 8192;
  bool answered(const IkeMids& m, std::string_view response = {});
  // The other node's answered responding IDs (initiating 0) read by the holder since the last
  // call, each only once it is above what was taken before for its IKE_SA; with the response
  // written with that ID ("" if none).
  std::vector<IkeAnswer> take_answered();

  struct Stats {
    std::atomic<uint64_t> obtained{0}, lost{0}, renewals{0}, failures{0};
    std::atomic<uint64_t> recorded{0}, record_failures{0}, records_read{0};
    std::atomic<uint64_t> children_left_out{0};          // oldest CHILD_SAs past max_record_children, per record
    std::atomic<uint64_t> answered{0}, answers_read{0};  // answers without the lease written; the other's read
  };
  const Stats& stats() const { return stats_; }
  // Tests only (test/cp/witness_records.cpp): sees each record Txn before it is sent; false: not
  // sent, as a call that got no answer (the test may give it to etcd itself, at once or late).
  std::function<bool(const etcdserverpb::TxnRequest&)> before_record;
  // What medixctl ha shows (no password, no token).
  struct View {
    std::string endpoint, key, user, last_refusal;
    bool tls = false, wanted = false, holder = false;
    int ttl_s = 0;
    int64_t last_renewal_ms = -1;  // since etcd last answered a grant or renewal; -1 never
  };
  View view() const;

 private:
  void run();
  void connect();                               // the channel, stubs and token (start, and reconnect under record_mu_)
  void reconnect();                             // a new connection (after a call of run()'s that got no answer)
  void unanswered(const grpc::Status& status);  // no answer: reconnect_ for run()
  bool obtain();                                // a lease granted and the key created with it
  bool renew();                                 // false: the lease is gone (etcd said so) or etcd did not answer
  void revoke();
  // With etcd's user: its token on `ctx`; false if etcd refused or did not answer (said as a
  // refusal).
  bool add_token(grpc::ClientContext& ctx);
  bool refused(const std::string& why);  // says why the lease was not obtained (once per kind); false
  std::string etcd_error(const grpc::Status& status) const;  // "etcd: " and why, for refused()

  struct Record {
    IkeMids mids;
    std::vector<uint32_t> children;
    std::string request;   // the request's bytes to write with it ("": none)
    int64_t revision = 0;  // in recorded_: the record key's mod revision at etcd as last written or read; 0 absent
  };
  // Merges `r` with what etcd has (IDs only ever up); false if etcd has it all already.
  bool merge(Record& r);
  // Puts `records` in one Txn guarded by the lease and by each record's revision (record_mu_
  // held); where etcd's record changed, raised to it and tried again.
  bool put_records(std::vector<Record> records);
  // The holder: the other node's answered records (with each renewal); and from a range read.
  void read_answered();
  void take_answers(const google::protobuf::RepeatedPtrField<etcdserverpb::KeyValue>& kvs);

  std::string key_, name_, records_;  // records_: PREFIX/ike-mids/
  std::string answers_;               // PREFIX/ike-answered/
  std::string requests_;              // PREFIX/ike-requests/
  int ttl_s_ = 2;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease_;
  EtcdEndpoint endpoint_;  // the members, TLS, the user
  std::unique_ptr<EtcdToken> token_;
  std::atomic<int64_t> answered_ns_{0};  // steady clock of etcd's last answer to a grant or renewal
  mutable std::mutex refused_mu_;        // last_refusal_
  std::string last_refusal_;
  std::atomic<int64_t> lease_id_{0};  // set by the run() thread; read by record()
  std::atomic<bool> wanted_{false};
  std::atomic<int64_t> valid_until_ns_{0};  // steady clock; 0: not held
  bool said_lost_ = false;
  std::atomic<bool> reconnect_{false};  // set by a call without an answer, taken by run()
  std::string said_refused_;            // the kind of the last reason said (run() thread only)
  std::mutex record_mu_;
  std::map<std::pair<uint64_t, uint64_t>, Record> recorded_;  // under record_mu_
  bool said_children_ = false;                                // under record_mu_: more than a record carries
  std::optional<Records> fresh_;                              // under record_mu_
  int64_t key_revision_ = 0;  // under record_mu_: the revision that made the speaker's key (this lease)
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> answers_written_;  // under record_mu_: ours, as etcd has them
  std::mutex answers_mu_;
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> answers_seen_;  // under answers_mu_: the other's, taken
  std::vector<IkeAnswer> answers_fresh_;                            // under answers_mu_
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
  Stats stats_;
};

}  // namespace medix::cp::ha

#endif
