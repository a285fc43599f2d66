// The compact LPM (tables/lpm.h) against a brute-force reference: random routes, updates and
// deletes, lookups one by one and in bulk, several tables in one pool, aborted transactions,
// and what a reader of a published root sees while the writer works on the next one.
#include "tables/lpm.h"

#include <catch2/catch.hpp>
#include <map>
#include <random>

using medix::dp::Lpm;

namespace {

uint32_t mask_of(unsigned length) { return length == 0 ? 0 : ~uint32_t(0) << (32 - length); }

// The reference: every route, and a lookup that tries them all.
struct Reference {
  std::map<std::pair<uint32_t, uint8_t>, uint32_t> routes;
  void set(uint32_t address, uint8_t length, uint32_t leaf) {
    address &= mask_of(length);
    if (leaf)
      routes[{address, length}] = leaf;
    else
      routes.erase({address, length});
  }
  uint32_t lookup(uint32_t address) const {
    int best = -1;
    uint32_t leaf = 0;
    for (const auto& [key, value] : routes)
      if (int(key.second) > best && (address & mask_of(key.second)) == key.first) {
        best = key.second;
        leaf = value;
      }
    return leaf;
  }
};

// Addresses that share their first bytes often, so that plies are shared, split and merged.
struct Addresses {
  std::mt19937 rng;
  explicit Addresses(uint32_t seed) : rng(seed) {}
  uint32_t any() {
    static const uint32_t bases[] = {0x0a000000, 0x0a010000, 0x0a010200, 0xc0a80100, 0xac100000, 0x64400000};
    uint32_t base = bases[rng() % std::size(bases)];
    switch (rng() % 4) {
      case 0: return base | (rng() & 0xff);
      case 1: return base | (rng() & 0xffff);
      case 2: return base ^ (rng() & 0x00ffffff);
      default: return rng();
    }
  }
  uint8_t length() {
    static const uint8_t common[] = {0, 8, 12, 16, 20, 23, 24, 25, 28, 30, 32};
    return rng() % 3 ? common[rng() % std::size(common)] : uint8_t(rng() % 33);
  }
};

void check_all(const Lpm& lpm, uint32_t table, const Reference& ref, Addresses& a, int probes) {
  std::vector<uint32_t> addresses;
  for (const auto& [key, leaf] : ref.routes) {  // each route's first, last and a middle address
    addresses.push_back(key.first);
    addresses.push_back(key.first | ~mask_of(key.second));
    addresses.push_back(key.first | (~mask_of(key.second) >> 1));
  }
  for (int i = 0; i < probes; i++) addresses.push_back(a.any());
  std::vector<uint32_t> roots(addresses.size(), lpm.root(table)), leaves(addresses.size());
  for (size_t first = 0; first < addresses.size(); first += 32) {
    unsigned n = unsigned(std::min<size_t>(32, addresses.size() - first));
    Lpm::lookup_bulk(lpm.plies(), roots.data() + first, addresses.data() + first, leaves.data() + first, n);
  }
  for (size_t i = 0; i < addresses.size(); i++) {
    uint32_t want = ref.lookup(addresses[i]);
    INFO("address " << std::hex << addresses[i]);
    REQUIRE(Lpm::lookup(lpm.plies(), lpm.root(table), addresses[i]) == want);
    REQUIRE(leaves[i] == want);
  }
}

}  // namespace

TEST_CASE("lpm: random routes, updates and deletes match a brute-force LPM") {
  Lpm lpm;
  REQUIRE(!lpm.init(1 << 16));
  REQUIRE(lpm.create(0));
  lpm.commit();
  REQUIRE(lpm.plies_in_use() == 1);
  Reference ref;
  Addresses a(7);
  std::vector<std::pair<uint32_t, uint8_t>> added;
  for (int round = 0; round < 40; round++) {
    for (int i = 0; i < 50; i++) {
      uint32_t leaf = 1 + a.rng() % 1000;
      if (!added.empty() && a.rng() % 3 == 0) {  // delete or change one that exists
        auto [address, length] = added[a.rng() % added.size()];
        if (a.rng() % 2) leaf = 0;
        REQUIRE(lpm.set(0, address, length, leaf));
        ref.set(address, length, leaf);
      } else {
        uint32_t address = a.any();
        uint8_t length = a.length();
        REQUIRE(lpm.set(0, address, length, leaf));
        ref.set(address, length, leaf);
        added.push_back({address & mask_of(length), length});
      }
    }
    lpm.commit();
    REQUIRE(lpm.routes(0) == ref.routes.size());
    check_all(lpm, 0, ref, a, 300);
    REQUIRE(lpm.plies_in_use() == lpm.plies_of(0));  // what a commit replaced is free again
  }
  // Deleting every route gives every ply back but the root.
  for (const auto& [key, leaf] : Reference(ref).routes) {
    REQUIRE(lpm.set(0, key.first, key.second, 0));
    ref.set(key.first, key.second, 0);
  }
  lpm.commit();
  check_all(lpm, 0, ref, a, 300);
  CHECK(lpm.routes(0) == 0);
  CHECK(lpm.plies_in_use() == 1);
}

TEST_CASE("lpm: tables in one pool keep their own routes; destroy frees a table's plies") {
  Lpm lpm;
  REQUIRE(!lpm.init(1 << 16));
  std::vector<Reference> refs(20);
  Addresses a(11);
  for (uint32_t t = 0; t < refs.size(); t++) REQUIRE(lpm.create(t));
  for (int i = 0; i < 3000; i++) {
    uint32_t t = a.rng() % refs.size();
    uint32_t address = a.any();
    uint8_t length = a.length();
    uint32_t leaf = a.rng() % 5 ? 1 + a.rng() % 100 : 0;
    REQUIRE(lpm.set(t, address, length, leaf));
    refs[t].set(address, length, leaf);
  }
  lpm.commit();
  for (uint32_t t = 0; t < refs.size(); t++) check_all(lpm, t, refs[t], a, 100);
  // The same address in every table, looked up in one bulk call over mixed tables.
  std::vector<uint32_t> roots, addresses, leaves(32);
  for (uint32_t i = 0; i < 32; i++) {
    roots.push_back(lpm.root(i % refs.size()));
    addresses.push_back(0x0a010203);
  }
  Lpm::lookup_bulk(lpm.plies(), roots.data(), addresses.data(), leaves.data(), 32);
  for (uint32_t i = 0; i < 32; i++) CHECK(leaves[i] == refs[i % refs.size()].lookup(0x0a010203));
  size_t total = 0;
  for (uint32_t t = 0; t < refs.size(); t++) total += lpm.plies_of(t);
  CHECK(lpm.plies_in_use() == total);
  size_t of_3 = lpm.plies_of(3);
  lpm.destroy(3);
  CHECK(lpm.plies_in_use() == total - of_3);
  CHECK(lpm.root(3) == 0);
  for (uint32_t t = 0; t < refs.size(); t++)
    if (t != 3) check_all(lpm, t, refs[t], a, 100);
}

TEST_CASE("lpm: a reader of the published root sees it unchanged until the next root is published") {
  Lpm lpm;
  REQUIRE(!lpm.init(1 << 12));
  REQUIRE(lpm.create(0));
  Reference before;
  Addresses a(3);
  for (int i = 0; i < 500; i++) {
    uint32_t address = a.any();
    uint8_t length = a.length();
    uint32_t leaf = 1 + a.rng() % 50;
    REQUIRE(lpm.set(0, address, length, leaf));
    before.set(address, length, leaf);
  }
  lpm.commit();
  uint32_t published = lpm.root(0);
  size_t in_use = lpm.plies_in_use();
  Reference after = before;
  for (int i = 0; i < 300; i++) {  // the next transaction: adds, changes, deletes, 0/0 too
    uint32_t address = a.any();
    uint8_t length = i == 0 ? 0 : a.length();
    uint32_t leaf = a.rng() % 3 ? 1 + a.rng() % 50 : 0;
    REQUIRE(lpm.set(0, address, length, leaf));
    after.set(address, length, leaf);
  }
  CHECK(lpm.root(0) != published);
  // Before commit: the published root still answers as before, the new one as after.
  for (int i = 0; i < 3000; i++) {
    uint32_t x = a.any();
    REQUIRE(Lpm::lookup(lpm.plies(), published, x) == before.lookup(x));
    REQUIRE(Lpm::lookup(lpm.plies(), lpm.root(0), x) == after.lookup(x));
  }
  SECTION("abort: the table is as it was, every ply the transaction made is free") {
    lpm.abort();
    CHECK(lpm.root(0) == published);
    CHECK(lpm.plies_in_use() == in_use);
    CHECK(lpm.routes(0) == before.routes.size());
    check_all(lpm, 0, before, a, 500);
    // And it goes on working.
    REQUIRE(lpm.set(0, 0x0a000000, 8, 9));
    before.set(0x0a000000, 8, 9);
    lpm.commit();
    check_all(lpm, 0, before, a, 500);
  }
  SECTION("commit: the plies only the old root reached are freed") {
    lpm.commit();
    CHECK(lpm.plies_in_use() == lpm.plies_of(0));
    check_all(lpm, 0, after, a, 500);
  }
}

TEST_CASE("lpm: out of plies fails the change; abort restores the table") {
  Lpm lpm;
  REQUIRE(!lpm.init(8));  // ply 0 is never given out: 7 usable
  REQUIRE(lpm.create(0));
  REQUIRE(lpm.set(0, 0x0a000000, 24, 5));  // root + 2 plies
  lpm.commit();
  REQUIRE(lpm.plies_in_use() == 3);
  bool ok = true;
  uint32_t i = 0;
  for (; ok && i < 8; i++) ok = lpm.set(0, 0x0b000000 + (i << 16), 24, 6);
  CHECK(!ok);
  lpm.abort();
  CHECK(lpm.plies_in_use() == 3);
  CHECK(lpm.routes(0) == 1);
  CHECK(Lpm::lookup(lpm.plies(), lpm.root(0), 0x0a000001) == 5);
  CHECK(Lpm::lookup(lpm.plies(), lpm.root(0), 0x0b000001) == 0);
  auto m = lpm.match(0, 0x0a0000ff);
  REQUIRE(m);
  CHECK(m->length == 24);
  CHECK(m->leaf == 5);
  CHECK(!lpm.match(0, 0x0b000001));
}
