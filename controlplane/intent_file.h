#pragma once
// medix-cp's intent (proto/medix/controlplane/v1/intent.proto): loading, defaults, validation.

#include <sys/types.h>

#include <optional>
#include <string>

#include "charon/glue.h"
#include "medix/controlplane/v1/intent.pb.h"

namespace medix::cp {

namespace c1 = medix::controlplane::v1;

// Reads a JSON intent file; fills defaults (tunnel name, identities) and validates it.
// Returns an error "FILE: field.path: reason", or nothing with `intent` filled.
std::optional<std::string> load_intent(const std::string& path, c1::Intent& intent);
// The same on the file's text (`name` heads the errors): what load_intent does once it has
// read the file, and what the intent fuzzer (test/fuzz/intent.cpp) feeds.
std::optional<std::string> parse_intent(const std::string& text, const std::string& name, c1::Intent& intent);

// Defaults filled and every field checked (peers, then the static objects: objects.h); "" if
// valid, else "peers[2].psk: is required".
std::string validate_intent(c1::Intent& intent);
// The area's bgp (docs/areas.md): its backbone interface is one of the core tenant's. "" or the error.
std::string validate_bgp(const c1::Intent& intent);

// The intent as the JSON save_intent writes; `error` set if protobuf cannot print it.
std::string intent_json(const c1::Intent& intent, std::string& error);

// Writes the intent as JSON with write_atomically. "" or the error ("PATH: reason").
std::string save_intent(const std::string& path, const c1::Intent& intent, int* error = nullptr);

// Writes `text` durably: every byte into PATH.tmp (a short write goes on; the call that fails says
// why: "No space left on device"), fsync, renamed over `path`, the directory fsynced. A crash
// leaves the old file or the new one, whole. "" or "PATH: strerror"; `error` gets the errno.
std::string write_atomically(const std::string& path, const std::string& text, mode_t mode, int* error = nullptr);

// Replaces the intent file as save_intent does, keeping the file it replaces as PATH.prev (a hard
// link: putting it back needs no space on the disk) until restore_intent or forget_previous_intent.
// On error nothing changed. "" or "PATH: strerror"; `error` gets the errno.
std::string replace_intent(const std::string& path, const c1::Intent& intent, int* error);
// The file replace_intent replaced, back in place, durably. "" or the error.
std::string restore_intent(const std::string& path);
void forget_previous_intent(const std::string& path);

// Whether the intent file's directory takes the files medix-cp rewrites there (the intent file and
// PATH.owned): a file of their size written, synced and removed. "" or the reason (a full or
// read-only disk), so that medix-cp says so at once.
std::string check_writable(const std::string& path);

// Whether two versions of a peer differ in their lifetimes alone (ike_rekey_seconds and the
// child_* rekey and life limits): such a change is applied in place, its IKE_SAs kept
// (docs/cp.md, "Lifetimes changed in place"). False if they are equal.
bool only_lifetimes_differ(const c1::Peer& a, const c1::Peer& b);

// A peer as the glue takes it (cp_peer), with the strings it points into.
struct GluePeer {
  explicit GluePeer(const c1::Peer& p);
  std::string ike, esp, local_ts, remote_ts;
  cp_peer c;
};

}  // namespace medix::cp
