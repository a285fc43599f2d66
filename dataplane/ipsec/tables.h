#pragma once
// IPsec's part of a generation (tables/tables.h): the SAs by slot (Tables::sas, each declared
// in ipsec/sa.h) and the inbound SPI index (Tables::sa_index). A tunnel's own fields are in
// InterfaceEntry, whose slots and names tunnels share with interfaces. Ground floor like
// tables/: no protobuf, no feature. Built by ipsec/commit.cpp.
#include <rte_hash.h>

#include <cstdint>

#include "infra/limits.h"
#include "tables/hash.h"

namespace medix::dp {

struct SaState;

// The SA index (by inbound SPI), read lock-free by workers while the main lcore adds.
inline constexpr HashShape sa_index_shape{max_sas, sizeof(uint32_t), RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF};

}  // namespace medix::dp
