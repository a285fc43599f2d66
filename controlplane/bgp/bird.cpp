#include "bgp/bird.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "intent_file.h"

namespace medix::cp::bgp {

namespace {
constexpr int kTimeoutMs = 1000;
}

std::string Bird::config(const std::map<std::string, std::string>& neighbours, unsigned interval_ms,
                         unsigned multiplier) {
  const std::string ms = std::to_string(interval_ms) + " ms;\n";
  std::string text = "# Written by medix-cp (the intent's bgp section): BFD with the backbone's neighbours.\n";
  text += "protocol bfd medix {\n  interface \"*\" {\n";
  text += "    min rx interval " + ms + "    min tx interval " + ms;
  text += "    idle tx interval 1000 ms;\n    multiplier " + std::to_string(multiplier) + ";\n  };\n";
  for (const auto& [address, local] : neighbours) text += "  neighbor " + address + " local " + local + ";\n";
  return text + "}\n";
}

std::string Bird::command(const std::string& line, std::string& reply) {
  reply.clear();
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + strerror(errno);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (socket_.size() >= sizeof sa.sun_path) {
    close(fd);
    return socket_ + ": too long a path";
  }
  memcpy(sa.sun_path, socket_.data(), socket_.size());
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    std::string e = socket_ + ": " + strerror(errno);
    close(fd);
    return e;
  }
  // The greeting ("0001 BIRD 2.0.12 ready."), then our command's reply: both end with a line
  // whose code is followed by a space; codes from 8000 are errors.
  std::string buffer, error;
  bool greeted = false, sent = false;
  for (;;) {
    size_t end;
    while ((end = buffer.find('\n')) != std::string::npos) {
      std::string l = buffer.substr(0, end);
      buffer.erase(0, end + 1);
      bool numbered = l.size() >= 5 && isdigit(l[0]) && isdigit(l[1]) && isdigit(l[2]) && isdigit(l[3]);
      std::string body = numbered ? l.substr(5) : l.substr(l.empty() ? 0 : 1);  // " text": continued
      if (greeted) reply += body + "\n";
      if (numbered && l[4] == ' ') {
        if (!greeted) {
          greeted = true;
          continue;
        }
        if (l[0] >= '8') error = socket_ + ": " + line + ": " + body;
        close(fd);
        return error;
      }
    }
    if (greeted && !sent) {
      std::string out = line + "\n";
      if (write(fd, out.data(), out.size()) != ssize_t(out.size())) break;
      sent = true;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, kTimeoutMs) <= 0) {
      close(fd);
      return socket_ + ": " + line + ": no answer within 1 s";
    }
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0) break;
    buffer.append(chunk, size_t(n));
  }
  close(fd);
  return socket_ + ": " + line + ": the connection ended";
}

std::string Bird::configure(const std::map<std::string, std::string>& neighbours, unsigned interval_ms,
                            unsigned multiplier) {
  std::string text = config(neighbours, interval_ms, multiplier);
  if (text == loaded_) return "";
  if (std::string e = write_atomically(include_, text, 0644); !e.empty()) return e;
  std::string reply;
  if (std::string e = command("configure", reply); !e.empty()) return e;
  loaded_ = text;
  return "";
}

std::string Bird::sessions(std::map<std::string, std::string>& state) {
  std::string reply;
  if (std::string e = command("show bfd sessions medix", reply); !e.empty()) return e;
  // "medix:", a header, then "ADDRESS INTERFACE STATE SINCE INTERVAL TIMEOUT" per session.
  std::istringstream lines(reply);
  std::string l;
  while (std::getline(lines, l)) {
    std::istringstream words(l);
    std::string address, interface, s;
    if (words >> address >> interface >> s && address.find_first_not_of("0123456789.") == std::string::npos)
      state[address] = s;
  }
  return "";
}

}  // namespace medix::cp::bgp
