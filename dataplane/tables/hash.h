#pragma once
// The shape of the generation's rte_hash indexes, ground floor (tables/tables.h and the
// features' tables.h name theirs).
#include <rte_hash.h>

#include <cstdint>

namespace medix::dp {

// The shape of an rte_hash: what sizes it. runtime/memory.cpp estimates the memory of each from
// the same shape the runtime creates it with.
struct HashShape {
  uint32_t entries;
  uint32_t key_len;
  uint8_t extra_flag;  // RTE_HASH_EXTRA_FLAGS_*
};
rte_hash_parameters hash_parameters(const HashShape& shape, const char* name, rte_hash_function hash, unsigned socket);

}  // namespace medix::dp
