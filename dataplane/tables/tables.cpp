#include "tables/tables.h"

#include <rte_errno.h>
#include <rte_jhash.h>
#include <rte_malloc.h>

namespace medix::dp {

rte_hash_parameters hash_parameters(const HashShape& shape, const char* name, rte_hash_function hash, unsigned socket) {
  rte_hash_parameters params{};
  params.name = name;
  params.entries = shape.entries;
  params.key_len = shape.key_len;
  params.hash_func = hash;
  params.socket_id = int(socket);
  params.extra_flag = shape.extra_flag;
  return params;
}

bool NeighbourTable::init(const char* name, unsigned socket) {
  rte_hash_parameters params = hash_parameters(neighbour_index_shape, name, rte_jhash, socket);
  index_ = rte_hash_create(&params);
  if (!index_) return false;
  entries_ = static_cast<std::atomic<uint64_t>*>(
      rte_zmalloc_socket(name, sizeof(uint64_t) * (max_neighbours + 1), RTE_CACHE_LINE_SIZE, int(socket)));
  return entries_ != nullptr;
}

void NeighbourTable::destroy() {
  rte_hash_free(index_);
  rte_free(entries_);
  index_ = nullptr;
  entries_ = nullptr;
}

bool NeighbourTable::set(uint16_t interface, uint32_t address, const rte_ether_addr& mac, bool make_static) {
  NeighbourSlotKey key{address, interface, 0};
  int32_t pos = rte_hash_lookup(index_, &key);
  if (pos < 0) pos = rte_hash_add_key(index_, &key);
  if (pos < 0) return false;
  uint64_t old = entries_[pos].load(std::memory_order_relaxed);
  if ((old & is_static) && !make_static) return true;  // learning never overrides config
  uint64_t word = valid | (make_static ? is_static : 0);
  for (unsigned i = 0; i < RTE_ETHER_ADDR_LEN; i++) word |= uint64_t(mac.addr_bytes[i]) << (8 * (5 - i));
  if (word == old) return true;  // learnt again, the same: workers' caches hold
  entries_[pos].store(word, std::memory_order_release);
  epoch_.fetch_add(1, std::memory_order_release);
  return true;
}

void NeighbourTable::lookup_bulk(const NeighbourSlotKey* keys, unsigned n, uint64_t* words,
                                 NeighbourCache* cache) const {
  // The epoch first: entries cached in it hold what the table held then, or newer.
  const uint64_t epoch = epoch_.load(std::memory_order_acquire);
  // Packets of a burst mostly go to one next hop: look each run of equal keys up once.
  const void* key_ptrs[RTE_HASH_LOOKUP_BULK_MAX];
  int32_t positions[RTE_HASH_LOOKUP_BULK_MAX];
  unsigned lookup_of[RTE_HASH_LOOKUP_BULK_MAX];
  constexpr unsigned cached = UINT32_MAX;
  for (unsigned done = 0; done < n;) {
    unsigned count = std::min<unsigned>(n - done, RTE_HASH_LOOKUP_BULK_MAX);
    unsigned lookups = 0;
    for (unsigned i = 0; i < count; i++) {
      const NeighbourSlotKey& k = keys[done + i];
      if (cache) {
        const NeighbourCache::Entry& e = cache->entries[NeighbourCache::index(k.address, k.interface)];
        if (e.epoch == epoch && e.address == k.address && e.interface == k.interface) {
          words[done + i] = e.word;
          lookup_of[i] = cached;
          continue;
        }
      }
      // Field by field: a whole-key load just after the stores that built it would wait.
      if (lookups == 0 || k.address != static_cast<const NeighbourSlotKey*>(key_ptrs[lookups - 1])->address ||
          k.interface != static_cast<const NeighbourSlotKey*>(key_ptrs[lookups - 1])->interface)
        key_ptrs[lookups++] = &k;
      lookup_of[i] = lookups - 1;
    }
    if (lookups) rte_hash_lookup_bulk(index_, key_ptrs, lookups, positions);
    for (unsigned i = 0; i < count; i++) {
      if (lookup_of[i] == cached) continue;
      int32_t pos = positions[lookup_of[i]];
      uint64_t word = pos >= 0 ? entries_[pos].load(std::memory_order_acquire) : 0;
      words[done + i] = word;
      if (cache && (word & valid)) {
        const NeighbourSlotKey& k = keys[done + i];
        cache->entries[NeighbourCache::index(k.address, k.interface)] = {word, k.address, k.interface, 0, epoch};
      }
    }
    done += count;
  }
}

rte_ether_addr NeighbourTable::mac_of(uint64_t word) {
  rte_ether_addr mac;
  for (unsigned i = 0; i < RTE_ETHER_ADDR_LEN; i++) mac.addr_bytes[i] = uint8_t(word >> (8 * (5 - i)));
  return mac;
}

void NeighbourTable::remove(uint16_t interface, uint32_t address, std::vector<int32_t>& release_after_grace) {
  NeighbourSlotKey key{address, interface, 0};
  int32_t pos = rte_hash_lookup(index_, &key);
  if (pos < 0) return;
  entries_[pos].store(0, std::memory_order_release);
  epoch_.fetch_add(1, std::memory_order_release);
  if (rte_hash_del_key(index_, &key) >= 0) release_after_grace.push_back(pos);
}

void NeighbourTable::release(const std::vector<int32_t>& positions) {
  for (int32_t pos : positions) rte_hash_free_key_with_position(index_, pos);
}

}  // namespace medix::dp
