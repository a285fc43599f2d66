#pragma once
// The area's BFD daemon, BIRD 2 (docs/areas.md, "BFD"), through its control socket (the text
// protocol birdc speaks: a command per line, replies in numbered lines, the last "NNNN text").
// medix-cp owns one file BIRD's configuration includes: its `protocol bfd medix` (the
// neighbours, the intervals), written and then loaded with `configure`; and it reads the
// sessions' states back (`show bfd sessions medix`).

#include <map>
#include <string>

namespace medix::cp::bgp {

class Bird {
 public:
  // `socket`: BIRD's control socket (bird -s); `include`: the file its bird.conf includes.
  Bird(std::string socket, std::string include) : socket_(std::move(socket)), include_(std::move(include)) {}
  const std::string& socket() const { return socket_; }
  // `protocol bfd medix` with these neighbours (address -> our local address) and timers,
  // written and loaded unless it is what was last loaded. "" or what failed.
  std::string configure(const std::map<std::string, std::string>& neighbours, unsigned interval_ms,
                        unsigned multiplier);
  // Each neighbour's session state ("Up", "Down", "Init", "AdminDown"). "" or what failed.
  std::string sessions(std::map<std::string, std::string>& state);
  // The text of the file (what configure writes).
  static std::string config(const std::map<std::string, std::string>& neighbours, unsigned interval_ms,
                            unsigned multiplier);

 private:
  // Sends one command; its reply's lines, codes taken off. "" or what failed (BIRD's error).
  std::string command(const std::string& line, std::string& reply);
  const std::string socket_, include_;
  std::string loaded_;  // the file's text BIRD last loaded from us
};

}  // namespace medix::cp::bgp
