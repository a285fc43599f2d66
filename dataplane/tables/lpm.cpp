#include "tables/lpm.h"

#include <sys/mman.h>

#include <cstring>

namespace medix::dp {
namespace {

uint32_t mask_of(unsigned length) { return length == 0 ? 0 : ~uint32_t(0) << (32 - length); }
uint64_t key_of(uint32_t address, uint8_t length) { return uint64_t(address) << 8 | length; }
// Entry index of `address` in a ply at `depth` (its bits 8 * depth .. 8 * depth + 7).
unsigned index_at(uint32_t address, unsigned depth) { return (address >> (24 - 8 * depth)) & 0xff; }

}  // namespace

Lpm::~Lpm() {
  if (entries_) munmap(entries_, size_t(max_plies_) * ply_size * sizeof(uint32_t));
  if (lengths_) munmap(lengths_, size_t(max_plies_) * ply_size);
}

std::optional<std::string> Lpm::init(uint32_t max_plies) {
  if (max_plies < 2 || max_plies > (ply_flag >> 8)) return "bad ply count";
  max_plies_ = max_plies;
  // Address space only: pages are taken when a ply is first written (MAP_NORESERVE), so the
  // reservation costs nothing until routes need it.
  size_t entry_bytes = size_t(max_plies) * ply_size * sizeof(uint32_t);
  void* e = mmap(nullptr, entry_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  void* l = mmap(nullptr, size_t(max_plies) * ply_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (e == MAP_FAILED || l == MAP_FAILED) {
    if (e != MAP_FAILED) munmap(e, entry_bytes);
    if (l != MAP_FAILED) munmap(l, size_t(max_plies) * ply_size);
    return "cannot reserve address space for the compact FIBs";
  }
  madvise(e, entry_bytes, MADV_HUGEPAGE);  // fewer TLB misses where the kernel has THP
  entries_ = static_cast<uint32_t*>(e);
  lengths_ = static_cast<uint8_t*>(l);
  born_.assign(1, 0);
  return std::nullopt;
}

uint32_t Lpm::fresh(uint32_t leaf, uint8_t length) {
  uint32_t p;
  if (!free_.empty()) {
    p = free_.back();
    free_.pop_back();
  } else if (next_ < max_plies_) {
    p = next_++;
    born_.push_back(0);
  } else {
    return 0;
  }
  uint32_t* e = ply(p);
  for (unsigned i = 0; i < ply_size; i++) e[i] = leaf;
  memset(lengths(p), length, ply_size);
  born_[p] = serial_;
  made_.push_back(p);
  in_use_++;
  return p;
}

uint32_t Lpm::writable(uint32_t p) {
  if (born_[p] == serial_) return p;
  uint32_t copy = fresh(0, 0);
  if (!copy) return 0;
  memcpy(ply(copy), ply(p), ply_size * sizeof(uint32_t));
  memcpy(lengths(copy), lengths(p), ply_size);
  replaced_.push_back(p);
  return copy;
}

void Lpm::release(uint32_t p) {
  born_[p] = 0;
  free_.push_back(p);
  in_use_--;
}

void Lpm::touch(uint32_t table) {
  if (touched_in_.size() <= table) touched_in_.resize(table + 1, 0);
  if (touched_in_[table] == serial_) return;
  touched_in_[table] = serial_;
  touched_.push_back({table, tables_[table].root});
}

bool Lpm::create(uint32_t table) {
  if (tables_.size() <= table) tables_.resize(table + 1);
  touch(table);
  uint32_t p = fresh(0, 0);
  if (!p) return false;
  tables_[table].root = p;
  return true;
}

uint32_t Lpm::child(uint32_t p, unsigned i) {
  uint32_t* e = ply(p);
  uint32_t c = writable(e[i] & ~ply_flag);
  if (c) e[i] = c | ply_flag;
  return c;
}

void Lpm::collapse(uint32_t p, unsigned i) {
  uint32_t* e = ply(p);
  uint32_t c = e[i] & ~ply_flag;
  const uint32_t* ce = ply(c);
  const uint8_t* cl = lengths(c);
  if (ce[0] & ply_flag) return;
  for (unsigned k = 1; k < ply_size; k++)
    if (ce[k] != ce[0] || cl[k] != cl[0]) return;
  e[i] = ce[0];
  lengths(p)[i] = cl[0];
  release(c);  // writable: made by this transaction
}

bool Lpm::needs_fill(uint32_t p, uint8_t length, uint32_t leaf) const {
  const uint32_t* e = entries_ + (size_t(p) << 8);
  const uint8_t* l = lengths_ + (size_t(p) << 8);
  for (unsigned i = 0; i < ply_size; i++) {
    if (e[i] & ply_flag) {
      if (needs_fill(e[i] & ~ply_flag, length, leaf)) return true;
    } else if (l[i] <= length && (e[i] != leaf || l[i] != length)) {
      return true;
    }
  }
  return false;
}

// Every entry under p that no longer route covers takes the new one: entries of a route as
// long or shorter (the route itself when it changes, the shorter ones it now overrides).
bool Lpm::fill(uint32_t p, uint8_t length, uint32_t leaf) { return fill(p, 0, ply_size, length, leaf); }

// The same for the entries first .. first + count of ply p.
bool Lpm::fill(uint32_t p, unsigned first, unsigned count, uint8_t length, uint32_t leaf) {
  for (unsigned i = first; i < first + count; i++) {
    uint32_t e = ply(p)[i];
    if (e & ply_flag) {
      if (!needs_fill(e & ~ply_flag, length, leaf)) continue;
      uint32_t c = child(p, i);
      if (!c || !fill(c, length, leaf)) return false;
      collapse(p, i);
    } else if (lengths(p)[i] <= length) {
      ply(p)[i] = leaf;
      lengths(p)[i] = length;
    }
  }
  return true;
}

bool Lpm::insert(uint32_t p, unsigned depth, uint32_t address, uint8_t length, uint32_t leaf) {
  unsigned end = 8 * depth + 8;  // the bits this ply decides end here
  unsigned i = index_at(address, depth);
  if (length <= end) {
    unsigned count = 1u << (end - length);
    return fill(p, i & ~(count - 1), count, length, leaf);
  }
  uint32_t e = ply(p)[i];
  uint32_t c;
  if (e & ply_flag) {
    c = child(p, i);
  } else {
    c = fresh(e, lengths(p)[i]);  // the longer route splits the entry: a ply of what it held
    if (c) ply(p)[i] = c | ply_flag;
  }
  if (!c || !insert(c, depth + 1, address, length, leaf)) return false;
  collapse(p, i);
  return true;
}

bool Lpm::needs_replace(uint32_t p, uint8_t length) const {
  const uint32_t* e = entries_ + (size_t(p) << 8);
  const uint8_t* l = lengths_ + (size_t(p) << 8);
  for (unsigned i = 0; i < ply_size; i++) {
    if (e[i] & ply_flag) {
      if (needs_replace(e[i] & ~ply_flag, length)) return true;
    } else if (l[i] == length) {
      return true;
    }
  }
  return false;
}

// Under a deleted route's range, its entries (the ones of exactly its length: no other route
// of that length holds these addresses) take the route that covers it.
bool Lpm::replace(uint32_t p, uint8_t length, uint32_t leaf, uint8_t leaf_length) {
  return replace(p, 0, ply_size, length, leaf, leaf_length);
}

bool Lpm::replace(uint32_t p, unsigned first, unsigned count, uint8_t length, uint32_t leaf, uint8_t leaf_length) {
  for (unsigned i = first; i < first + count; i++) {
    uint32_t e = ply(p)[i];
    if (e & ply_flag) {
      if (!needs_replace(e & ~ply_flag, length)) continue;
      uint32_t c = child(p, i);
      if (!c || !replace(c, length, leaf, leaf_length)) return false;
      collapse(p, i);
    } else if (lengths(p)[i] == length) {
      ply(p)[i] = leaf;
      lengths(p)[i] = leaf_length;
    }
  }
  return true;
}

bool Lpm::remove(uint32_t p, unsigned depth, uint32_t address, uint8_t length, uint32_t leaf, uint8_t leaf_length) {
  unsigned end = 8 * depth + 8;
  unsigned i = index_at(address, depth);
  if (length <= end) {
    unsigned count = 1u << (end - length);
    return replace(p, i & ~(count - 1), count, length, leaf, leaf_length);
  }
  if (!(ply(p)[i] & ply_flag)) return true;  // nothing longer than this entry's route here
  uint32_t c = child(p, i);
  if (!c || !remove(c, depth + 1, address, length, leaf, leaf_length)) return false;
  collapse(p, i);
  return true;
}

bool Lpm::set(uint32_t table, uint32_t address, uint8_t length, uint32_t leaf) {
  if (table >= tables_.size() || !tables_[table].root || length > 32 || (leaf & ply_flag)) return false;
  Table& t = tables_[table];
  address &= mask_of(length);
  uint64_t key = key_of(address, length);
  auto it = t.rib.find(key);
  uint32_t before = it == t.rib.end() ? 0 : it->second;
  if (before == leaf) return true;
  touch(table);
  rib_undo_.push_back({table, key, before});
  uint32_t root = writable(t.root);
  if (!root) return false;
  t.root = root;
  if (leaf) {
    t.rib[key] = leaf;
    return insert(root, 0, address, length, leaf);
  }
  t.rib.erase(key);
  // What covers the deleted route: the longest shorter route holding its address.
  uint32_t cover = 0;
  uint8_t cover_length = 0;
  for (int l = int(length) - 1; l >= 0; l--) {
    auto c = t.rib.find(key_of(address & mask_of(unsigned(l)), uint8_t(l)));
    if (c != t.rib.end()) {
      cover = c->second;
      cover_length = uint8_t(l);
      break;
    }
  }
  return remove(root, 0, address, length, cover, cover_length);
}

void Lpm::commit() {
  for (uint32_t p : replaced_) {
    born_[p] = 0;
    free_.push_back(p);
    in_use_--;
  }
  replaced_.clear();
  made_.clear();
  touched_.clear();
  rib_undo_.clear();
  serial_++;
}

void Lpm::abort() {
  for (uint32_t p : made_)
    if (born_[p] == serial_) release(p);
  for (auto it = touched_.rbegin(); it != touched_.rend(); ++it) tables_[it->first].root = it->second;
  for (auto it = rib_undo_.rbegin(); it != rib_undo_.rend(); ++it) {
    auto& rib = tables_[it->table].rib;
    if (it->leaf)
      rib[it->key] = it->leaf;
    else
      rib.erase(it->key);
  }
  replaced_.clear();
  made_.clear();
  touched_.clear();
  rib_undo_.clear();
  serial_++;
}

void Lpm::free_tree(uint32_t p) {
  for (unsigned i = 0; i < ply_size; i++)
    if (ply(p)[i] & ply_flag) free_tree(ply(p)[i] & ~ply_flag);
  born_[p] = 0;
  free_.push_back(p);
  in_use_--;
}

void Lpm::destroy(uint32_t table) {
  if (table >= tables_.size() || !tables_[table].root) return;
  free_tree(tables_[table].root);
  tables_[table] = Table{};
}

size_t Lpm::count_tree(uint32_t p) const {
  size_t n = 1;
  const uint32_t* e = entries_ + (size_t(p) << 8);
  for (unsigned i = 0; i < ply_size; i++)
    if (e[i] & ply_flag) n += count_tree(e[i] & ~ply_flag);
  return n;
}

size_t Lpm::plies_of(uint32_t table) const {
  return table < tables_.size() && tables_[table].root ? count_tree(tables_[table].root) : 0;
}

std::optional<uint32_t> Lpm::get(uint32_t table, uint32_t address, uint8_t length) const {
  if (table >= tables_.size()) return std::nullopt;
  auto it = tables_[table].rib.find(key_of(address & mask_of(length), length));
  if (it == tables_[table].rib.end()) return std::nullopt;
  return it->second;
}

std::optional<Lpm::Match> Lpm::match(uint32_t table, uint32_t address) const {
  if (table >= tables_.size()) return std::nullopt;
  const auto& rib = tables_[table].rib;
  for (int l = 32; l >= 0; l--) {
    uint32_t a = address & mask_of(unsigned(l));
    auto it = rib.find(key_of(a, uint8_t(l)));
    if (it != rib.end()) return Match{a, uint8_t(l), it->second};
  }
  return std::nullopt;
}

}  // namespace medix::dp
