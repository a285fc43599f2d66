#include "trace.h"

#include <iomanip>
#include <iostream>

#include "capture.h"
#include "output.h"

namespace medix::ctl {

void print_trace(std::ostream& out, const v1::GetTraceResponse& trace) {
  if (!trace.running()) {
    out << "no trace (medixctl trace add N starts one)\n";
    return;
  }
  out << trace.packets_size() << " of " << trace.count() << " packets traced\n";
  for (const auto& p : trace.packets()) {
    out << "\nPacket " << p.index() + 1 << " (lcore " << p.lcore() << ", " << format_time(p.timestamp_ns()) << ")\n";
    for (const auto& s : p.steps()) out << "  " << std::left << std::setw(11) << s.stage() << s.text() << "\n";
    if (p.steps_lost()) out << "  (" << p.steps_lost() << " more stages not kept)\n";
  }
}

int trace_command(Client& client, Args& args, bool json) {
  if (args.take("add")) {
    v1::StartTraceRequest request;
    request.set_count(args.next_u32("a packet count"));
    while (!args.done())
      if (!take_filter_option(args, *request.mutable_filter()))
        throw UsageError("trace add: unknown option " + args.peek());
    client.start_trace(request);
    if (!json) std::cout << "tracing the next " << request.count() << " packets that match\n";
    return 0;
  }
  if (args.take("show")) {
    args.expect_done();
    v1::GetTraceResponse trace = client.get_trace();
    if (json)
      std::cout << to_json(trace, true) << "\n";
    else
      print_trace(std::cout, trace);
    return 0;
  }
  if (args.take("clear")) {
    args.expect_done();
    client.clear_trace();
    return 0;
  }
  throw UsageError(args.done() ? "trace: add, show or clear?" : "trace: unknown \"" + args.peek() + "\"");
}

}  // namespace medix::ctl
