#pragma once
// Many small IPv4 FIBs in one pool: a multibit trie of 8-8-8-8 strides (VPP's ip4 mtrie as it
// is for small tables), so that an empty table is one 1 KiB ply and a table grows with its
// routes, not with the address space (DIR24_8's 2^24-entry first level is 32 MiB whatever it
// holds). Every table's plies live in one array, an entry is 32 bits: a leaf (a next hop id,
// 0 = no route) or, with ply_flag, the index of the ply for the next 8 bits.
//
// Readers never see a ply change: the writer copies a published ply before changing it (path
// copying; a ply made in this transaction is changed in place), so a change is visible only
// through a new root, which the next generation of the tables publishes with its one atomic
// store. The plies the new roots no longer reach are freed by commit(), after the grace
// period that publication is followed by. One copy of each table, no locks, no atomics on the
// reader side; a transaction costs copies of the plies on its routes' paths.
//
// Each table keeps its routes (a RIB: prefix -> leaf) for the writer: a deleted route's
// entries take the longest route that covers it.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace medix::dp {

class Lpm {
 public:
  static constexpr uint32_t ply_flag = 0x80000000u;
  static constexpr unsigned ply_size = 256;
  // What one ply costs: its entries (read by workers), and for the writer the prefix length
  // behind each entry and the transaction that made it.
  static constexpr size_t ply_bytes = ply_size * sizeof(uint32_t) + ply_size + sizeof(uint32_t);

  Lpm() = default;
  ~Lpm();
  Lpm(const Lpm&) = delete;
  Lpm& operator=(const Lpm&) = delete;

  // How many plies `mb` MiB hold (at least 2, at most what an entry can name).
  static uint32_t plies_in(uint64_t mb) {
    uint64_t n = (mb << 20) / ply_bytes;
    return uint32_t(n < 2 ? 2 : n > (ply_flag >> 8) ? (ply_flag >> 8) : n);
  }
  // Reserves address space for `max_plies` plies; memory is taken as plies are first used.
  std::optional<std::string> init(uint32_t max_plies);

  // --- Readers (any lcore), with a root from a published generation. Ply 0 is all zero and
  // never given out: a root of 0 finds nothing.
  const uint32_t* plies() const { return entries_; }
  static uint32_t lookup(const uint32_t* plies, uint32_t root, uint32_t address) {
    uint32_t e = plies[size_t(root) << 8 | address >> 24];
    for (int shift = 16; shift >= 0 && (e & ply_flag); shift -= 8)
      e = plies[size_t(e & ~ply_flag) << 8 | ((address >> shift) & 0xff)];
    return e;
  }
  // leaves[i] = lookup(plies, roots[i], addresses[i]); a level at a time over the whole burst,
  // without branches per packet, so that the loads of one level overlap.
  static void lookup_bulk(const uint32_t* plies, const uint32_t* roots, const uint32_t* addresses, uint32_t* leaves,
                          unsigned n) {
    uint32_t deeper = 0;
    for (unsigned i = 0; i < n; i++) {
      leaves[i] = plies[size_t(roots[i]) << 8 | addresses[i] >> 24];
      deeper |= leaves[i];
    }
    for (int shift = 16; shift >= 0 && (deeper & ply_flag); shift -= 8) {
      deeper = 0;
      for (unsigned i = 0; i < n; i++) {
        uint32_t e = leaves[i];
        uint32_t ply = (e & ply_flag) ? e & ~ply_flag : 0;  // a leaf reads ply 0 and keeps itself
        uint32_t next = plies[size_t(ply) << 8 | ((addresses[i] >> shift) & 0xff)];
        leaves[i] = (e & ply_flag) ? next : e;
        deeper |= leaves[i];
      }
    }
  }

  // --- The writer (one thread). A table is named by the caller's id (a tenant slot).
  // An empty table; false: no free ply.
  bool create(uint32_t table);
  // Sets (leaf != 0) or deletes (leaf == 0) a route; false: out of plies (call abort()).
  bool set(uint32_t table, uint32_t address, uint8_t length, uint32_t leaf);
  // Frees the table's plies at once: only when no reader can reach them any more.
  void destroy(uint32_t table);
  // The root to publish (0: no such table).
  uint32_t root(uint32_t table) const { return table < tables_.size() ? tables_[table].root : 0; }
  // After the roots set since the last commit are published and a grace period has passed:
  // frees the plies they replaced.
  void commit();
  // Instead of commit: every table as it was at the last commit.
  void abort();

  // --- The writer's view of its routes.
  std::optional<uint32_t> get(uint32_t table, uint32_t address, uint8_t length) const;
  struct Match {
    uint32_t address;
    uint8_t length;
    uint32_t leaf;
  };
  // The longest route of the table that holds `address`.
  std::optional<Match> match(uint32_t table, uint32_t address) const;
  template <typename F>
  void for_each_route(uint32_t table, F&& f) const {
    if (table >= tables_.size()) return;
    for (const auto& [key, leaf] : tables_[table].rib) f(uint32_t(key >> 8), uint8_t(key & 0xff), leaf);
  }
  size_t routes(uint32_t table) const { return table < tables_.size() ? tables_[table].rib.size() : 0; }
  // Plies one table reaches (walks it).
  size_t plies_of(uint32_t table) const;
  size_t plies_in_use() const { return in_use_; }
  uint32_t max_plies() const { return max_plies_; }

 private:
  struct Table {
    uint32_t root = 0;
    std::unordered_map<uint64_t, uint32_t> rib;  // address << 8 | length -> leaf
  };
  struct RibUndo {
    uint32_t table;
    uint64_t key;
    uint32_t leaf;  // 0: absent
  };

  uint32_t* ply(uint32_t p) { return entries_ + (size_t(p) << 8); }
  uint8_t* lengths(uint32_t p) { return lengths_ + (size_t(p) << 8); }
  // A ply of this transaction: all `leaf` of prefix length `length`. 0: none free.
  uint32_t fresh(uint32_t leaf, uint8_t length);
  // The ply itself if this transaction made it, else a fresh copy (the original is freed at
  // commit). 0: none free.
  uint32_t writable(uint32_t p);
  void release(uint32_t p);  // a ply of this transaction no one will publish: free at once
  void touch(uint32_t table);
  // The writer's steps, on a writable ply `p` covering bits [8 * depth, 8 * depth + 8).
  bool insert(uint32_t p, unsigned depth, uint32_t address, uint8_t length, uint32_t leaf);
  bool fill(uint32_t p, uint8_t length, uint32_t leaf);
  bool fill(uint32_t p, unsigned first, unsigned count, uint8_t length, uint32_t leaf);
  bool remove(uint32_t p, unsigned depth, uint32_t address, uint8_t length, uint32_t leaf, uint8_t leaf_length);
  bool replace(uint32_t p, uint8_t length, uint32_t leaf, uint8_t leaf_length);
  bool replace(uint32_t p, unsigned first, unsigned count, uint8_t length, uint32_t leaf, uint8_t leaf_length);
  bool needs_fill(uint32_t p, uint8_t length, uint32_t leaf) const;
  bool needs_replace(uint32_t p, uint8_t length) const;
  // Entry i of p (a writable ply) holds a ply: makes that ply writable, links it. 0: none free.
  uint32_t child(uint32_t p, unsigned i);
  // If the child ply at entry i of p holds one leaf of one length, the entry takes it.
  void collapse(uint32_t p, unsigned i);
  void free_tree(uint32_t p);
  size_t count_tree(uint32_t p) const;

  uint32_t* entries_ = nullptr;
  uint8_t* lengths_ = nullptr;
  std::vector<uint32_t> born_;  // by ply: the transaction that made it
  uint32_t max_plies_ = 0;
  uint32_t next_ = 1;  // plies below it have been used; 0 is the empty ply
  std::vector<uint32_t> free_;
  size_t in_use_ = 0;
  std::vector<Table> tables_;

  // This transaction.
  uint32_t serial_ = 1;
  std::vector<uint32_t> made_;                          // plies it made (some maybe released)
  std::vector<uint32_t> replaced_;                      // published plies it copied: freed at commit
  std::vector<std::pair<uint32_t, uint32_t>> touched_;  // tables whose root it changed, and that root
  std::vector<uint32_t> touched_in_;                    // by table: the transaction that last touched it
  std::vector<RibUndo> rib_undo_;
};

}  // namespace medix::dp
