// Catch2 runner with DPDK's EAL up (no hugepages, no PCI, one null port), so that stages run
// on real mbufs and real rte_fib/rte_hash tables.
#define CATCH_CONFIG_RUNNER
#include <rte_eal.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <string>

int main(int argc, char** argv) {
  std::string prefix = "--file-prefix=medix-unit-" + std::to_string(getpid());
  const char* eal[] = {
      "unit-tests",       "--no-huge",        "-m",          "512", "--no-pci", "-l", "0", "--log-level=error",
      "--vdev=net_null0", "--vdev=net_null1", prefix.c_str()};
  if (rte_eal_init(int(std::size(eal)), const_cast<char**>(eal)) < 0) return 1;
  int result = Catch::Session().run(argc, argv);
  rte_eal_cleanup();
  return result;
}
